package dev.rejectionfhir.hapi.profiles;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Predicate;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.Attachment;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.CodeableConcept;
import org.hl7.fhir.r4.model.Coding;
import org.hl7.fhir.r4.model.DocumentReference;
import org.hl7.fhir.r4.model.Observation;
import org.hl7.fhir.r4.model.Reference;

/**
 * The decisions of a {@link Profile}, free of HTTP and HAPI's server classes so that each rule can
 * be tested on its own: given one request (or one Bundle), say whether the imitated vendor would
 * refuse it, and why.
 */
public final class ProfileRules {

	/** Search result parameters every profile accepts: they shape the answer, not the match. */
	static final Set<String> RESULT_PARAMS = Set.of("_count", "_format", "_pretty", "_summary", "_elements");

	static final String OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category";

	/** A refusal: its kind (a key of the profile's "answers") and the diagnostics text. */
	public record Refusal(String kind, String diagnostics) {}

	/**
	 * One request, as the rules see it.
	 *
	 * @param interaction a FHIR interaction code (read, vread, update, patch, delete, create,
	 *     search-type, search-system, history-instance, history-type, history-system) or
	 *     "operation", "transaction", "batch", "capabilities", "page"
	 * @param resourceType the type addressed, or null at system level
	 * @param conditional a conditional create (If-None-Exist), update, patch or delete (search URL)
	 * @param operation the operation name with its "$" for interaction "operation"
	 * @param params query parameters (names with any modifier)
	 */
	public record Request(
			String interaction,
			String resourceType,
			boolean conditional,
			String operation,
			Map<String, List<String>> params,
			String ifMatch,
			String ifUnmodifiedSince,
			IBaseResource resource) {}

	private final Profile profile;

	public ProfileRules(Profile profile) {
		this.profile = profile;
	}

	public Profile profile() {
		return profile;
	}

	private Optional<Refusal> refuse(String kind, String message) {
		return Optional.of(new Refusal(kind, profile.name() + " (imitating " + profile.imitates() + "): " + message));
	}

	/**
	 * Checks one request that is not a Bundle.
	 *
	 * @param encounterExists answers whether "Encounter/{id}" exists on this profile's server
	 */
	public Optional<Refusal> check(Request r, Predicate<String> encounterExists) {
		switch (r.interaction()) {
			case "capabilities", "page":
				return Optional.empty();
			case "transaction", "batch":
				throw new IllegalArgumentException("use checkBundle for " + r.interaction());
			case "operation":
				return checkOperation(r);
			case "search-system", "history-system":
				return refuse("unsupported-interaction", "searches and history across all resource types are not supported");
			default:
				break;
		}
		String type = r.resourceType();
		Profile.ResourceRule rule = profile.resource(type);
		if (rule == null) {
			return refuse("unsupported-resource", "the resource type " + type + " is not supported; supported: "
					+ String.join(", ", profile.resources().keySet()));
		}
		String interaction = r.interaction();
		if (!rule.allows(interaction)) {
			return refuse("unsupported-interaction", type + " " + interaction + " is not supported; allowed on " + type
					+ ": " + (rule.interactions().isEmpty() ? "nothing" : String.join(", ", rule.interactions())));
		}
		if (r.conditional()) {
			boolean ok = switch (interaction) {
				case "create" -> rule.conditionalCreate();
				case "update", "patch" -> rule.conditionalUpdate();
				case "delete" -> rule.conditionalDelete();
				default -> true;
			};
			if (!ok) {
				return refuse("conditional", "conditional " + interaction + " of " + type + " is not supported"
						+ ("create".equals(interaction) ? " (If-None-Exist)" : " (a search URL instead of an id)"));
			}
		}
		if (Set.of("update", "patch", "delete").contains(interaction)) {
			Optional<Refusal> v = checkVersionHeaders(r);
			if (v.isPresent()) {
				return v;
			}
		}
		if ("search-type".equals(interaction)) {
			return checkSearch(rule, r.params());
		}
		if (("create".equals(interaction) || "update".equals(interaction)) && r.resource() != null) {
			return checkContent(rule, r.resource(), encounterExists);
		}
		return Optional.empty();
	}

	private Optional<Refusal> checkVersionHeaders(Request r) {
		if (r.ifMatch() != null && !r.ifMatch().isBlank() && profile.ifMatch() == Profile.HeaderMode.REFUSED) {
			String alt = profile.ifUnmodifiedSince() == Profile.HeaderMode.SUPPORTED ? "; use If-Unmodified-Since" : "";
			return refuse("version-header", "If-Match is not supported" + alt);
		}
		if (r.ifUnmodifiedSince() != null && !r.ifUnmodifiedSince().isBlank()
				&& profile.ifUnmodifiedSince() == Profile.HeaderMode.REFUSED) {
			String alt = profile.ifMatch() == Profile.HeaderMode.SUPPORTED ? "; use If-Match" : "";
			return refuse("version-header", "If-Unmodified-Since is not supported" + alt);
		}
		return Optional.empty();
	}

	private Optional<Refusal> checkSearch(Profile.ResourceRule rule, Map<String, List<String>> params) {
		Set<String> used = new HashSet<>();
		for (Map.Entry<String, List<String>> e : params.entrySet()) {
			String name = e.getKey();
			int colon = name.indexOf(':');
			String base = colon >= 0 ? name.substring(0, colon) : name;
			if (RESULT_PARAMS.contains(base)) {
				continue;
			}
			if ("_sort".equals(base)) {
				for (String value : e.getValue()) {
					for (String key : value.split(",")) {
						String k = key.startsWith("-") ? key.substring(1) : key;
						if (!k.isBlank() && !rule.sortParams().contains(k) && !rule.sortParams().contains("*")) {
							return refuse("unsupported-search", rule.type() + " cannot be sorted by " + k + "; sort keys: "
									+ (rule.sortParams().isEmpty() ? "none" : String.join(", ", rule.sortParams())));
						}
					}
				}
				continue;
			}
			if (!rule.searchParams().contains(base) && !rule.searchParams().contains("*")) {
				return refuse("unsupported-search", "the search parameter " + base + " is not supported on "
						+ rule.type() + "; supported: "
						+ (rule.searchParams().isEmpty() ? "none" : String.join(", ", rule.searchParams())));
			}
			used.add(base);
		}
		if (!rule.searchRequiresOneOf().isEmpty() && used.stream().noneMatch(rule.searchRequiresOneOf()::contains)) {
			return refuse("unsupported-search", "a " + rule.type() + " search needs one of: "
					+ String.join(", ", rule.searchRequiresOneOf()));
		}
		return Optional.empty();
	}

	private Optional<Refusal> checkContent(
			Profile.ResourceRule rule, IBaseResource resource, Predicate<String> encounterExists) {
		if (resource instanceof Observation obs && rule.writableCategories() != null) {
			List<String> codes = new ArrayList<>();
			for (CodeableConcept c : obs.getCategory()) {
				for (Coding coding : c.getCoding()) {
					if (OBSERVATION_CATEGORY.equals(coding.getSystem())) {
						codes.add(coding.getCode());
					}
				}
			}
			if (codes.isEmpty() || !rule.writableCategories().containsAll(codes)) {
				return refuse("content", "Observations can only be written in the categor"
						+ (rule.writableCategories().size() == 1 ? "y " : "ies ")
						+ String.join(", ", rule.writableCategories()) + " (" + OBSERVATION_CATEGORY + "); this one has "
						+ (codes.isEmpty() ? "none" : String.join(", ", codes)));
			}
		}
		if (resource instanceof DocumentReference doc) {
			if (rule.contentTypes() != null) {
				if (doc.getContent().isEmpty()) {
					return refuse("content", "a DocumentReference needs content with one of the types "
							+ String.join(", ", rule.contentTypes()));
				}
				for (DocumentReference.DocumentReferenceContentComponent content : doc.getContent()) {
					Attachment a = content.getAttachment();
					String ct = a.getContentType() == null ? "" : a.getContentType().split(";")[0].trim().toLowerCase();
					if (!rule.contentTypes().contains(ct)) {
						return refuse("content", "DocumentReference content of type " + (ct.isEmpty() ? "(none)" : ct)
								+ " is not accepted; accepted: " + String.join(", ", rule.contentTypes()));
					}
				}
			}
			if (rule.requiresEncounter()) {
				List<Reference> encounters = doc.getContext().getEncounter();
				if (encounters.isEmpty()) {
					return refuse("content", "a DocumentReference must name an existing Encounter in context.encounter");
				}
				for (Reference ref : encounters) {
					String value = ref.getReference();
					if (value == null || !encounterExists.test(value)) {
						return refuse("content", "context.encounter " + (value == null ? "(no reference)" : value)
								+ " is not an existing Encounter");
					}
				}
			}
		}
		return Optional.empty();
	}

	private Optional<Refusal> checkOperation(Request r) {
		String op = r.operation();
		if ("$export".equals(op)) {
			String level = r.resourceType() == null ? "system" : r.resourceType();
			if (!profile.exportLevels().contains(level)) {
				return refuse("unsupported-interaction", "$export is not supported at "
						+ ("system".equals(level) ? "system level" : level + " level") + "; supported levels: "
						+ (profile.exportLevels().isEmpty() ? "none" : String.join(", ", profile.exportLevels())));
			}
			if (r.params().containsKey("_since") && !profile.exportSince()) {
				return refuse("unsupported-search", "$export does not support _since");
			}
			return Optional.empty();
		}
		if ("$export-poll-status".equals(op)) {
			return profile.exportLevels().isEmpty()
					? refuse("unsupported-interaction", "bulk export is not supported")
					: Optional.empty();
		}
		if (profile.operations().contains(op)) {
			return Optional.empty();
		}
		return refuse("unsupported-interaction", "the operation " + op + " is not supported");
	}

	/** Checks a transaction or batch Bundle as a whole, then each of its entries. */
	public Optional<Refusal> checkBundle(Bundle bundle, Predicate<String> encounterExists) {
		Bundle.BundleType type = bundle.getType();
		boolean isTransaction = type == Bundle.BundleType.TRANSACTION;
		if (isTransaction && !profile.transactionAllowed()) {
			return refuse("transaction", "transaction Bundles are not supported"
					+ (profile.batchAllowed() ? " (batch is, for " + batchScope() + ")" : "") + "; send each request on its own");
		}
		if (type == Bundle.BundleType.BATCH && !profile.batchAllowed()) {
			return refuse("transaction", "batch Bundles are not supported; send each request on its own");
		}
		if (!isTransaction && type != Bundle.BundleType.BATCH) {
			return refuse("transaction", "a Bundle posted to the base must be a transaction or a batch");
		}

		// Encounters created in the same Bundle count as existing for notes that point at them.
		Set<String> bundleEncounters = new HashSet<>();
		for (Bundle.BundleEntryComponent e : bundle.getEntry()) {
			if (e.getResource() != null && "Encounter".equals(e.getResource().fhirType()) && e.hasFullUrl()) {
				bundleEncounters.add(e.getFullUrl());
			}
		}
		Predicate<String> exists = ref -> bundleEncounters.contains(ref) || encounterExists.test(ref);

		boolean strict = false;
		int updates = 0;
		int index = 0;
		for (Bundle.BundleEntryComponent e : bundle.getEntry()) {
			Request r = entryRequest(e);
			if (!isTransaction && profile.batchResourceTypes() != null
					&& !profile.batchResourceTypes().contains(String.valueOf(r.resourceType()))) {
				return refuse("transaction", "Bundle.entry[" + index + "]: a batch may only hold " + batchScope());
			}
			Optional<Refusal> entry = check(r, exists);
			if (entry.isPresent()) {
				Refusal inner = entry.get();
				String detail = inner.diagnostics().substring(inner.diagnostics().indexOf("): ") + 3);
				return refuse(inner.kind(), "Bundle.entry[" + index + "] (" + e.getRequest().getMethod() + " "
						+ e.getRequest().getUrl() + "): " + detail);
			}
			if (r.conditional() && !"search-type".equals(r.interaction())) {
				strict = true; // conditional create, update or delete
			}
			if ("update".equals(r.interaction())) {
				updates++;
			}
			index++;
		}
		if (isTransaction && profile.maxUpdatesPerTransaction() != null && updates > profile.maxUpdatesPerTransaction()) {
			return refuseVerbatim("transaction-limit", "Transaction contains more update operations than allowed");
		}
		if (isTransaction && strict && profile.strictIsolationMaxEntries() != null
				&& bundle.getEntry().size() > profile.strictIsolationMaxEntries()) {
			return refuseVerbatim("transaction-limit", "Transaction requires strict isolation but has too many entries");
		}
		return Optional.empty();
	}

	/** Vendors whose exact wording is known are answered in it, without the profile prefix. */
	private Optional<Refusal> refuseVerbatim(String kind, String message) {
		return Optional.of(new Refusal(kind, message));
	}

	private String batchScope() {
		return profile.batchResourceTypes() == null ? "any resource" : String.join(", ", profile.batchResourceTypes());
	}

	/** The request a Bundle entry stands for. */
	static Request entryRequest(Bundle.BundleEntryComponent e) {
		Bundle.BundleEntryRequestComponent req = e.getRequest();
		String method = req.getMethod() == null ? "" : req.getMethod().toCode();
		String url = req.getUrl() == null ? "" : req.getUrl();
		String path = url;
		String query = null;
		int q = url.indexOf('?');
		if (q >= 0) {
			path = url.substring(0, q);
			query = url.substring(q + 1);
		}
		while (path.startsWith("/")) {
			path = path.substring(1);
		}
		String[] parts = path.isEmpty() ? new String[0] : path.split("/");
		String type = parts.length > 0 && !parts[0].startsWith("$") ? parts[0] : null;
		String op = null;
		for (String p : parts) {
			if (p.startsWith("$")) {
				op = p;
			}
		}
		Map<String, List<String>> params = parseQuery(query);
		String interaction;
		boolean conditional = false;
		if (op != null) {
			interaction = "operation";
		} else {
			switch (method) {
				case "POST" -> {
					interaction = "create";
					conditional = req.hasIfNoneExist();
				}
				case "PUT" -> {
					interaction = "update";
					conditional = parts.length < 2;
				}
				case "PATCH" -> {
					interaction = "patch";
					conditional = parts.length < 2;
				}
				case "DELETE" -> {
					interaction = "delete";
					conditional = parts.length < 2;
				}
				case "GET", "HEAD" -> {
					if (type == null) {
						interaction = "search-system";
					} else if (parts.length == 1) {
						interaction = "search-type";
					} else if (parts.length >= 4 && "_history".equals(parts[2])) {
						interaction = "vread";
					} else if (parts.length >= 3 && "_history".equals(parts[2])) {
						interaction = "history-instance";
					} else if (parts.length == 2 && "_history".equals(parts[1])) {
						interaction = "history-type";
					} else {
						interaction = "read";
					}
				}
				default -> interaction = "unknown-" + method;
			}
		}
		IBaseResource resource = e.getResource();
		return new Request(interaction, type, conditional, op, params, req.getIfMatch(), null, resource);
	}

	static Map<String, List<String>> parseQuery(String query) {
		Map<String, List<String>> out = new LinkedHashMap<>();
		if (query == null || query.isEmpty()) {
			return out;
		}
		for (String pair : query.split("&")) {
			if (pair.isEmpty()) {
				continue;
			}
			int eq = pair.indexOf('=');
			String key = java.net.URLDecoder.decode(eq >= 0 ? pair.substring(0, eq) : pair, java.nio.charset.StandardCharsets.UTF_8);
			String value = eq >= 0 ? java.net.URLDecoder.decode(pair.substring(eq + 1), java.nio.charset.StandardCharsets.UTF_8) : "";
			out.computeIfAbsent(key, k -> new ArrayList<>()).add(value);
		}
		return out;
	}
}
