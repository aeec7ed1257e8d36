package dev.rejectionfhir.hapi;

import ca.uhn.fhir.jpa.packages.IPackageInstallerSvc;
import ca.uhn.fhir.rest.server.RestfulServer;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * Registers {@link PackageInstallProvider} ({@code $install-package}) on the FHIR servlet.
 * Kept apart from {@link FhirServerConfig} so that the REST wiring there stays as it is.
 * Providers registered before the servlet starts are picked up at its init.
 */
@Configuration
public class PackageInstallConfig {

	@Bean
	public PackageInstallProvider packageInstallProvider(IPackageInstallerSvc installer, RestfulServer restfulServer) {
		PackageInstallProvider provider = new PackageInstallProvider(installer);
		restfulServer.registerProvider(provider);
		return provider;
	}
}
