package dev.rejectionfhir.hapi.profiles;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/**
 * One EHR profile, read from {@code servers/profiles/<name>.json}: what an imitated vendor's FHIR
 * server allows. The file is the single source for both the enforcement ({@link ProfileRules}) and
 * the profile's /metadata ({@link ProfileCapabilityStatementProvider}). Keys are described in
 * servers/profiles/README.md; every rule object carries a "source" that this class ignores.
 */
public final class Profile {

	/** How a version header (If-Match, If-Unmodified-Since) is treated. */
	public enum HeaderMode {
		SUPPORTED,
		REFUSED,
		IGNORED;

		static HeaderMode of(String value) {
			return switch (value) {
				case "supported" -> SUPPORTED;
				case "refused" -> REFUSED;
				case "ignored" -> IGNORED;
				default -> throw new IllegalArgumentException("unknown header mode: " + value);
			};
		}
	}

	/** How one kind of refusal is answered: HTTP status and OperationOutcome issue code. */
	public record Answer(int status, String issueCode) {}

	/** What the profile allows on one resource type. */
	public record ResourceRule(
			String type,
			Set<String> interactions,
			boolean conditionalCreate,
			boolean conditionalUpdate,
			boolean conditionalDelete,
			boolean updateCreate,
			Set<String> searchParams,
			Set<String> searchRequiresOneOf,
			Set<String> sortParams,
			Set<String> writableCategories,
			Set<String> contentTypes,
			boolean requiresEncounter) {

		public boolean allows(String interaction) {
			return interactions.contains(interaction);
		}
	}

	/** The kinds of refusal a profile answers; each needs an entry in the file's "answers". */
	public static final Set<String> REFUSAL_KINDS = Set.of(
			"unsupported-resource",
			"unsupported-interaction",
			"unsupported-search",
			"conditional",
			"version-header",
			"precondition-failed",
			"content",
			"transaction",
			"transaction-limit",
			"test-access");

	private final String name;
	private final int partitionId;
	private final String imitates;
	private final String description;
	private final Map<String, ResourceRule> resources;
	private final boolean transaction;
	private final boolean batch;
	private final Set<String> batchResourceTypes;
	private final Integer strictIsolationMaxEntries;
	private final Integer maxUpdatesPerTransaction;
	private final HeaderMode ifMatch;
	private final HeaderMode ifUnmodifiedSince;
	private final boolean etag;
	private final Set<String> exportLevels;
	private final boolean exportSince;
	private final Set<String> operations;
	private final Map<String, Answer> answers;

	private Profile(JsonNode root) {
		name = text(root, "name");
		partitionId = root.path("partitionId").asInt(0);
		if (partitionId < 1) {
			throw new IllegalArgumentException("profile " + name + ": partitionId must be a positive integer");
		}
		imitates = text(root, "imitates");
		description = text(root, "description");

		JsonNode tx = root.path("transaction");
		transaction = tx.path("allowed").asBoolean(false);
		strictIsolationMaxEntries = tx.hasNonNull("strictIsolationMaxEntries") ? tx.get("strictIsolationMaxEntries").asInt() : null;
		maxUpdatesPerTransaction = tx.hasNonNull("maxUpdates") ? tx.get("maxUpdates").asInt() : null;
		JsonNode bt = root.path("batch");
		batch = bt.path("allowed").asBoolean(false);
		batchResourceTypes = bt.has("resourceTypes") ? strings(bt.get("resourceTypes")) : null;

		JsonNode v = root.path("versioning");
		ifMatch = HeaderMode.of(v.path("ifMatch").asText("refused"));
		ifUnmodifiedSince = HeaderMode.of(v.path("ifUnmodifiedSince").asText("ignored"));
		etag = v.path("etag").asBoolean(true);

		JsonNode bulk = root.path("bulkExport");
		exportLevels = bulk.has("levels") ? strings(bulk.get("levels")) : Set.of();
		exportSince = bulk.path("since").asBoolean(false);
		operations = root.has("operations") ? strings(root.path("operations").path("allowed")) : Set.of();

		Map<String, Answer> a = new LinkedHashMap<>();
		for (Iterator<Map.Entry<String, JsonNode>> it = root.path("answers").fields(); it.hasNext(); ) {
			Map.Entry<String, JsonNode> e = it.next();
			a.put(e.getKey(), new Answer(e.getValue().path("status").asInt(), e.getValue().path("issueCode").asText()));
		}
		for (String kind : REFUSAL_KINDS) {
			if (!a.containsKey(kind)) {
				throw new IllegalArgumentException("profile " + name + ": answers." + kind + " is missing");
			}
		}
		answers = Collections.unmodifiableMap(a);

		Map<String, ResourceRule> r = new LinkedHashMap<>();
		for (Iterator<Map.Entry<String, JsonNode>> it = root.path("resources").fields(); it.hasNext(); ) {
			Map.Entry<String, JsonNode> e = it.next();
			JsonNode n = e.getValue();
			r.put(e.getKey(), new ResourceRule(
					e.getKey(),
					strings(n.path("interactions")),
					n.path("conditionalCreate").asBoolean(false),
					n.path("conditionalUpdate").asBoolean(false),
					n.path("conditionalDelete").asBoolean(false),
					n.path("updateCreate").asBoolean(false),
					strings(n.path("searchParams")),
					n.has("searchRequiresOneOf") ? strings(n.get("searchRequiresOneOf")) : Set.of(),
					strings(n.path("sortParams")),
					n.has("writableCategories") ? strings(n.get("writableCategories")) : null,
					n.has("contentTypes") ? strings(n.get("contentTypes")) : null,
					n.path("requiresEncounter").asBoolean(false)));
		}
		resources = Collections.unmodifiableMap(r);
	}

	public static Profile load(Path file) throws IOException {
		return parse(Files.readString(file));
	}

	public static Profile parse(String json) throws IOException {
		return new Profile(new ObjectMapper().readTree(json));
	}

	private static String text(JsonNode node, String field) {
		JsonNode v = node.get(field);
		if (v == null || !v.isTextual() || v.asText().isBlank()) {
			throw new IllegalArgumentException("profile: \"" + field + "\" must be a non-empty string");
		}
		return v.asText();
	}

	private static Set<String> strings(JsonNode array) {
		Set<String> out = new LinkedHashSet<>();
		if (array != null && array.isArray()) {
			array.forEach(n -> out.add(n.asText()));
		}
		return Collections.unmodifiableSet(out);
	}

	public String name() { return name; }
	/** The HAPI partition holding this profile's data (the plain server uses the default partition). */
	public int partitionId() { return partitionId; }
	public String imitates() { return imitates; }
	public String description() { return description; }
	public Map<String, ResourceRule> resources() { return resources; }
	public ResourceRule resource(String type) { return resources.get(type); }
	public boolean transactionAllowed() { return transaction; }
	public boolean batchAllowed() { return batch; }
	/** Resource types a batch may contain; null = any the profile lets one write. */
	public Set<String> batchResourceTypes() { return batchResourceTypes; }
	public Integer strictIsolationMaxEntries() { return strictIsolationMaxEntries; }
	public Integer maxUpdatesPerTransaction() { return maxUpdatesPerTransaction; }
	public HeaderMode ifMatch() { return ifMatch; }
	public HeaderMode ifUnmodifiedSince() { return ifUnmodifiedSince; }
	/** Whether responses carry ETag headers. */
	public boolean etag() { return etag; }
	/** "system", or the resource types ("Patient", "Group") whose $export is allowed. */
	public Set<String> exportLevels() { return exportLevels; }
	public boolean exportSince() { return exportSince; }
	/** Named operations (e.g. "$validate") allowed besides $export. */
	public Set<String> operations() { return operations; }
	public Answer answer(String kind) { return answers.get(kind); }
}
