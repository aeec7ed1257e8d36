package dev.rejectionfhir.hapi;

import ca.uhn.fhir.jpa.packages.IPackageInstallerSvc;
import ca.uhn.fhir.jpa.packages.PackageInstallOutcomeJson;
import ca.uhn.fhir.jpa.packages.PackageInstallationSpec;
import ca.uhn.fhir.rest.annotation.Operation;
import ca.uhn.fhir.rest.annotation.OperationParam;
import ca.uhn.fhir.rest.server.exceptions.InvalidRequestException;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.hl7.fhir.r4.model.Base64BinaryType;
import org.hl7.fhir.r4.model.IntegerType;
import org.hl7.fhir.r4.model.Parameters;
import org.hl7.fhir.r4.model.StringType;
import org.hl7.fhir.utilities.npm.NpmPackage;

/**
 * {@code POST /fhir/$install-package}: installs a FHIR NPM package (a .tgz, sent as the
 * base64Binary parameter {@code npmContent}) through HAPI JPA's own package installer
 * ({@link IPackageInstallerSvc}, the same code path as HAPI's {@code implementationguides}
 * startup setting), so that rejection-fhir's tests can check that a package it builds loads
 * into a real server. The name and version come from the package's own package.json.
 *
 * <p>Resources are stored and installed ({@code STORE_AND_INSTALL}) for the conformance
 * types a package of worksheets holds; Questionnaire is not among HAPI's default install
 * types, hence the explicit list. Dependencies (hl7.fhir.r4.core) are not fetched: this
 * server has no network, and R4 core is built in. Loopback only, like the whole server.
 *
 * <p>The parameter name follows the HAPI JPA starter's {@code ImplementationGuide/$install}.
 */
public class PackageInstallProvider {

	/** What a package may install: the conformance types, and Questionnaire. */
	static final List<String> INSTALL_TYPES = List.of(
			"NamingSystem", "CodeSystem", "ValueSet", "StructureDefinition", "ConceptMap",
			"SearchParameter", "Questionnaire");

	private final IPackageInstallerSvc installer;

	public PackageInstallProvider(IPackageInstallerSvc installer) {
		this.installer = installer;
	}

	@Operation(name = "$install-package", idempotent = false)
	public Parameters installPackage(
			@OperationParam(name = "npmContent", min = 1, max = 1) Base64BinaryType npmContent) {
		byte[] bytes = npmContent == null ? null : npmContent.getValue();
		if (bytes == null || bytes.length == 0) {
			throw new InvalidRequestException("npmContent is empty: send the package's .tgz, base64-encoded");
		}
		NpmPackage npm;
		try {
			npm = NpmPackage.fromPackage(new ByteArrayInputStream(bytes));
		} catch (IOException | RuntimeException e) {
			throw new InvalidRequestException("npmContent is not a readable FHIR package: " + e.getMessage());
		}
		PackageInstallationSpec spec = new PackageInstallationSpec()
				.setName(npm.name())
				.setVersion(npm.version())
				.setPackageContents(bytes)
				.setInstallMode(PackageInstallationSpec.InstallModeEnum.STORE_AND_INSTALL)
				.setFetchDependencies(false);
		spec.setInstallResourceTypes(INSTALL_TYPES);
		// A package reinstalled under the same version replaces what it installed before.
		spec.setReloadExisting(true);
		PackageInstallOutcomeJson outcome = installer.install(spec);

		Parameters out = new Parameters();
		out.addParameter().setName("name").setValue(new StringType(npm.name()));
		out.addParameter().setName("version").setValue(new StringType(npm.version()));
		Map<String, Integer> installed = new TreeMap<>(outcome.getResourcesInstalled());
		for (Map.Entry<String, Integer> entry : installed.entrySet()) {
			Parameters.ParametersParameterComponent part = out.addParameter().setName("installed");
			part.addPart().setName("resourceType").setValue(new StringType(entry.getKey()));
			part.addPart().setName("count").setValue(new IntegerType(entry.getValue()));
		}
		for (String message : outcome.getMessage()) {
			out.addParameter().setName("message").setValue(new StringType(message));
		}
		return out;
	}
}
