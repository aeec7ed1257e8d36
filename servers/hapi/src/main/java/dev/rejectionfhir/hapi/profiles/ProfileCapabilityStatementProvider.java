package dev.rejectionfhir.hapi.profiles;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.RuntimeResourceDefinition;
import ca.uhn.fhir.context.RuntimeSearchParam;
import ca.uhn.fhir.rest.annotation.Metadata;
import ca.uhn.fhir.rest.api.server.RequestDetails;
import ca.uhn.fhir.rest.server.IServerConformanceProvider;
import ca.uhn.fhir.rest.server.RestfulServer;
import jakarta.servlet.http.HttpServletRequest;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.Map;
import org.hl7.fhir.r4.model.CapabilityStatement;
import org.hl7.fhir.r4.model.CapabilityStatement.CapabilityStatementRestComponent;
import org.hl7.fhir.r4.model.CapabilityStatement.CapabilityStatementRestResourceComponent;
import org.hl7.fhir.r4.model.CapabilityStatement.ConditionalDeleteStatus;
import org.hl7.fhir.r4.model.CapabilityStatement.ResourceVersionPolicy;
import org.hl7.fhir.r4.model.CapabilityStatement.SystemRestfulInteraction;
import org.hl7.fhir.r4.model.CapabilityStatement.TypeRestfulInteraction;
import org.hl7.fhir.r4.model.Enumerations;

/**
 * A profile's /metadata, generated from the same {@link Profile} the interceptor enforces, so the
 * CapabilityStatement states exactly what the profile allows and nothing else.
 */
public final class ProfileCapabilityStatementProvider implements IServerConformanceProvider<CapabilityStatement> {

	static final String EXPORT_DEFINITION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export";
	static final String GROUP_EXPORT_DEFINITION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export";
	static final String PATIENT_EXPORT_DEFINITION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export";

	/** observation-category code -> the US Core Observation profile of that category. */
	static final Map<String, String> CATEGORY_PROFILES = Map.of(
			"vital-signs", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs",
			"laboratory", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab",
			"survey", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-survey",
			"social-history", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-smokingstatus",
			"imaging", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-imaging");

	private final Profile profile;
	private final FhirContext fhirContext;
	private final Date started = new Date();
	private RestfulServer server;

	public ProfileCapabilityStatementProvider(Profile profile, FhirContext fhirContext) {
		this.profile = profile;
		this.fhirContext = fhirContext;
	}

	@Override
	public void setRestfulServer(RestfulServer server) {
		this.server = server;
	}

	@Override
	@Metadata
	public CapabilityStatement getServerConformance(HttpServletRequest request, RequestDetails requestDetails) {
		return build(requestDetails == null ? null : requestDetails.getFhirServerBase());
	}

	/** The CapabilityStatement for this profile; {@code base} is the endpoint's URL, if known. */
	public CapabilityStatement build(String base) {
		CapabilityStatement cs = new CapabilityStatement();
		cs.setStatus(Enumerations.PublicationStatus.ACTIVE);
		cs.setDate(started);
		cs.setKind(CapabilityStatement.CapabilityStatementKind.INSTANCE);
		cs.setFhirVersion(Enumerations.FHIRVersion._4_0_1);
		cs.addFormat("application/fhir+json");
		cs.addFormat("application/fhir+xml");
		cs.setName("RejectionFhirProfile" + profile.name().replace("-", ""));
		cs.setTitle(profile.name() + ": a local HAPI FHIR server imitating " + profile.imitates() + "'s refusals");
		cs.setPublisher("rejection-fhir (test server; not " + profile.imitates() + ")");
		cs.setDescription(profile.description());
		cs.getSoftware().setName("rejection-fhir HAPI FHIR profile " + profile.name());
		cs.getImplementation().setDescription(profile.name() + " profile of the rejection-fhir local HAPI FHIR server; imitates "
				+ profile.imitates() + ", is not it");
		if (base != null) {
			cs.getImplementation().setUrl(base);
		}

		CapabilityStatementRestComponent rest = cs.addRest();
		rest.setMode(CapabilityStatement.RestfulCapabilityMode.SERVER);
		rest.setDocumentation(restDocumentation());
		for (Profile.ResourceRule rule : profile.resources().values()) {
			rest.addResource(resource(rule));
		}
		if (profile.transactionAllowed()) {
			rest.addInteraction().setCode(SystemRestfulInteraction.TRANSACTION);
		}
		if (profile.batchAllowed()) {
			rest.addInteraction().setCode(SystemRestfulInteraction.BATCH)
					.setDocumentation(profile.batchResourceTypes() == null ? null
							: "batch entries may only be " + String.join(", ", profile.batchResourceTypes()));
		}
		if (profile.exportLevels().contains("system")) {
			rest.addOperation().setName("export").setDefinition(EXPORT_DEFINITION);
		}
		for (String op : profile.operations()) {
			rest.addOperation().setName(op.substring(1)).setDefinition("http://hl7.org/fhir/OperationDefinition/Resource-"
					+ op.substring(1));
		}
		return cs;
	}

	private String restDocumentation() {
		List<String> lines = new ArrayList<>();
		lines.add(profile.description());
		lines.add("If-Match: " + profile.ifMatch().name().toLowerCase() + "; If-Unmodified-Since: "
				+ profile.ifUnmodifiedSince().name().toLowerCase() + "; ETag: " + (profile.etag() ? "sent" : "not sent") + ".");
		if (profile.transactionAllowed() && profile.strictIsolationMaxEntries() != null) {
			lines.add("A transaction with a conditional create, update or delete entry runs with strict isolation and is "
					+ "refused above " + profile.strictIsolationMaxEntries() + " entries.");
		}
		if (profile.transactionAllowed() && profile.maxUpdatesPerTransaction() != null) {
			lines.add("A transaction may hold at most " + profile.maxUpdatesPerTransaction() + " updates.");
		}
		if (!profile.exportLevels().isEmpty()) {
			lines.add("Bulk export ($export) at: " + String.join(", ", profile.exportLevels()) + "; _since "
					+ (profile.exportSince() ? "supported" : "not supported") + ".");
		}
		return String.join(" ", lines);
	}

	private CapabilityStatementRestResourceComponent resource(Profile.ResourceRule rule) {
		CapabilityStatementRestResourceComponent r = new CapabilityStatementRestResourceComponent();
		r.setType(rule.type());
		for (String code : rule.interactions()) {
			r.addInteraction().setCode(TypeRestfulInteraction.fromCode(code));
		}
		if (profile.ifMatch() == Profile.HeaderMode.SUPPORTED) {
			r.setVersioning(ResourceVersionPolicy.VERSIONEDUPDATE);
		} else if (rule.allows("vread")) {
			r.setVersioning(ResourceVersionPolicy.VERSIONED);
		} else {
			r.setVersioning(ResourceVersionPolicy.NOVERSION);
		}
		r.setReadHistory(rule.allows("vread"));
		r.setUpdateCreate(rule.updateCreate());
		r.setConditionalCreate(rule.conditionalCreate());
		r.setConditionalUpdate(rule.conditionalUpdate());
		r.setConditionalDelete(rule.conditionalDelete() ? ConditionalDeleteStatus.SINGLE : ConditionalDeleteStatus.NOTSUPPORTED);
		RuntimeResourceDefinition def = fhirContext.getResourceDefinition(rule.type());
		List<String> names = new ArrayList<>(rule.searchParams());
		if (names.contains("*")) {
			// Everything HAPI knows for the type, as the plain server would list it.
			names.remove("*");
			names.add("_id");
			names.add("_lastUpdated");
			def.getSearchParams().stream().map(RuntimeSearchParam::getName).sorted().forEach(names::add);
		}
		for (String name : names) {
			CapabilityStatement.CapabilityStatementRestResourceSearchParamComponent sp = r.addSearchParam().setName(name);
			Enumerations.SearchParamType type = searchParamType(def, name);
			if (type != null) {
				sp.setType(type);
			}
		}
		if (profile.exportLevels().contains(rule.type())) {
			r.addOperation().setName("export")
					.setDefinition("Group".equals(rule.type()) ? GROUP_EXPORT_DEFINITION : PATIENT_EXPORT_DEFINITION);
		}
		List<String> notes = new ArrayList<>();
		if (!rule.searchRequiresOneOf().isEmpty()) {
			notes.add("A search needs one of: " + String.join(", ", rule.searchRequiresOneOf()) + ".");
		}
		if (rule.allows("search-type")) {
			notes.add("Sort keys: " + (rule.sortParams().isEmpty() ? "none"
					: rule.sortParams().contains("*") ? "any search parameter" : String.join(", ", rule.sortParams())) + ".");
		}
		if (rule.writableCategories() != null) {
			notes.add("Writable categories: " + String.join(", ", rule.writableCategories()) + ".");
			// The structured way servers state it (Epic and Oracle list US Core profiles): a client
			// such as check-server reads supportedProfile, not free text.
			// All or nothing: a category without a profile here would make the list say less than
			// the profile allows, so then only the text states it.
			if (CATEGORY_PROFILES.keySet().containsAll(rule.writableCategories())) {
				rule.writableCategories().stream().sorted().map(CATEGORY_PROFILES::get).forEach(r::addSupportedProfile);
			}
		}
		if (rule.contentTypes() != null) {
			notes.add("Content types accepted: " + String.join(", ", rule.contentTypes()) + ".");
		}
		if (rule.requiresEncounter()) {
			notes.add("context.encounter must reference an existing Encounter.");
		}
		if (!notes.isEmpty()) {
			r.setDocumentation(String.join(" ", notes));
		}
		return r;
	}

	private static Enumerations.SearchParamType searchParamType(RuntimeResourceDefinition def, String name) {
		switch (name) {
			case "_id":
				return Enumerations.SearchParamType.TOKEN;
			case "_lastUpdated":
				return Enumerations.SearchParamType.DATE;
			default:
				RuntimeSearchParam p = def.getSearchParam(name);
				return p == null ? null : Enumerations.SearchParamType.fromCode(p.getParamType().getCode());
		}
	}
}
