package dev.rejectionfhir.hapi.profiles;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Predicate;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.CodeableConcept;
import org.hl7.fhir.r4.model.DocumentReference;
import org.hl7.fhir.r4.model.Identifier;
import org.hl7.fhir.r4.model.Observation;
import org.hl7.fhir.r4.model.QuestionnaireResponse;
import org.hl7.fhir.r4.model.Reference;
import org.junit.jupiter.api.Test;

/**
 * The profile rules on their own, from the real files in servers/profiles (the server's
 * behaviour end to end is tests/integration/test_profiles.py).
 */
class ProfileRulesTest {

	private static final Predicate<String> NO_ENCOUNTERS = ref -> false;
	private static final Predicate<String> ENCOUNTER_1 = "Encounter/1"::equals;

	static ProfileRules rules(String name) throws Exception {
		Path file = Path.of("..", "profiles", name + ".json");
		return new ProfileRules(Profile.parse(Files.readString(file)));
	}

	static ProfileRules.Request request(String interaction, String type) {
		return new ProfileRules.Request(interaction, type, false, null, Map.of(), null, null, null);
	}

	static ProfileRules.Request search(String type, Map<String, List<String>> params) {
		return new ProfileRules.Request("search-type", type, false, null, params, null, null, null);
	}

	static ProfileRules.Request create(org.hl7.fhir.r4.model.Resource resource, boolean conditional) {
		return new ProfileRules.Request("create", resource.fhirType(), conditional, null, Map.of(), null, null, resource);
	}

	static String kind(Optional<ProfileRules.Refusal> refusal) {
		return refusal.map(ProfileRules.Refusal::kind).orElse("allowed");
	}

	static Observation observation(String category) {
		Observation obs = new Observation();
		CodeableConcept concept = new CodeableConcept();
		concept.addCoding().setSystem(ProfileRules.OBSERVATION_CATEGORY).setCode(category);
		obs.addCategory(concept);
		return obs;
	}

	static DocumentReference note(String contentType, String encounter) {
		DocumentReference doc = new DocumentReference();
		doc.addContent().getAttachment().setContentType(contentType);
		if (encounter != null) {
			doc.getContext().addEncounter(new Reference(encounter));
		}
		return doc;
	}

	@Test
	void everyProfileLetsAPortalPostAResponse() throws Exception {
		for (String name : List.of("epic-like", "oracle-like", "athena-like", "canvas-like", "medplum-like")) {
			assertEquals("allowed", kind(rules(name).check(create(new QuestionnaireResponse(), false), NO_ENCOUNTERS)), name);
		}
	}

	@Test
	void epicRefusesWhatEpicRefuses() throws Exception {
		ProfileRules epic = rules("epic-like");
		assertEquals("unsupported-interaction", kind(epic.check(request("create", "Questionnaire"), NO_ENCOUNTERS)));
		assertEquals("unsupported-resource", kind(epic.check(request("create", "Flag"), NO_ENCOUNTERS)));
		assertEquals("conditional", kind(epic.check(create(new QuestionnaireResponse(), true), NO_ENCOUNTERS)));
		assertEquals("allowed", kind(epic.check(create(observation("vital-signs"), false), NO_ENCOUNTERS)));
		assertEquals("content", kind(epic.check(create(observation("survey"), false), NO_ENCOUNTERS)));
		assertEquals("allowed", kind(epic.check(create(note("text/plain; charset=utf-8", "Encounter/1"), false), ENCOUNTER_1)));
		assertEquals("content", kind(epic.check(create(note("text/markdown", "Encounter/1"), false), ENCOUNTER_1)));
		assertEquals("content", kind(epic.check(create(note("text/plain", null), false), ENCOUNTER_1)));
		assertEquals("content", kind(epic.check(create(note("text/plain", "Encounter/2"), false), ENCOUNTER_1)));
		assertEquals("unsupported-search", kind(epic.check(
				search("QuestionnaireResponse", Map.of("_lastUpdated", List.of("ge2026"))), NO_ENCOUNTERS)));
		assertEquals("allowed", kind(epic.check(
				search("QuestionnaireResponse", Map.of("patient", List.of("Patient/1"), "_count", List.of("5"))), NO_ENCOUNTERS)));
		Bundle tx = new Bundle().setType(Bundle.BundleType.TRANSACTION);
		assertEquals("transaction", kind(epic.checkBundle(tx, NO_ENCOUNTERS)));
	}

	static ProfileRules.Request update(org.hl7.fhir.r4.model.Resource resource, String ifMatch) {
		return new ProfileRules.Request("update", resource.fhirType(), false, null, Map.of(), ifMatch, null, resource);
	}

	@Test
	void epicTakesWhatEpicsStatementLists() throws Exception {
		// Epic's saved statement (tests/data/capabilities/epic-r4-sandbox-may-2026.json):
		// QuestionnaireResponse search by authored; DocumentReference and Observation update.
		ProfileRules epic = rules("epic-like");
		assertEquals("allowed", kind(epic.check(
				search("QuestionnaireResponse", Map.of("authored", List.of("ge2026-01-01"))), NO_ENCOUNTERS)));
		assertEquals("allowed", kind(epic.check(update(note("text/plain", "Encounter/1"), null), ENCOUNTER_1)));
		assertEquals("allowed", kind(epic.check(update(observation("vital-signs"), null), NO_ENCOUNTERS)));
		// An update still keeps the content rules and takes no If-Match.
		assertEquals("content", kind(epic.check(update(note("text/markdown", "Encounter/1"), null), ENCOUNTER_1)));
		assertEquals("content", kind(epic.check(update(observation("survey"), null), NO_ENCOUNTERS)));
		assertEquals("version-header", kind(epic.check(update(note("text/plain", "Encounter/1"), "W/\"1\""), ENCOUNTER_1)));
		assertEquals("unsupported-interaction", kind(epic.check(update(new QuestionnaireResponse(), null), NO_ENCOUNTERS)));
	}

	@Test
	void oracleSearchesResponsesOnlyByIdOrPatientAndBatchesOnlyProvenance() throws Exception {
		ProfileRules oracle = rules("oracle-like");
		assertEquals("unsupported-search", kind(oracle.check(search("QuestionnaireResponse", Map.of()), NO_ENCOUNTERS)));
		assertEquals("unsupported-search", kind(oracle.check(
				search("QuestionnaireResponse", Map.of("_sort", List.of("_lastUpdated"), "patient", List.of("1"))), NO_ENCOUNTERS)));
		assertEquals("allowed", kind(oracle.check(search("QuestionnaireResponse", Map.of("_id", List.of("1"))), NO_ENCOUNTERS)));
		assertEquals("allowed", kind(oracle.check(create(observation("laboratory"), false), NO_ENCOUNTERS)));
		Bundle batch = new Bundle().setType(Bundle.BundleType.BATCH);
		batch.addEntry().setResource(new org.hl7.fhir.r4.model.Provenance()).getRequest()
				.setMethod(Bundle.HTTPVerb.POST).setUrl("Provenance");
		assertEquals("allowed", kind(oracle.checkBundle(batch, NO_ENCOUNTERS)));
		batch.addEntry().setResource(observation("vital-signs")).getRequest().setMethod(Bundle.HTTPVerb.POST).setUrl("Observation");
		assertEquals("transaction", kind(oracle.checkBundle(batch, NO_ENCOUNTERS)));
	}

	@Test
	void canvasTakesIfUnmodifiedSinceNotIfMatch() throws Exception {
		ProfileRules canvas = rules("canvas-like");
		ProfileRules.Request ifMatch = new ProfileRules.Request(
				"update", "QuestionnaireResponse", false, null, Map.of(), "W/\"1\"", null, new QuestionnaireResponse());
		assertEquals("version-header", kind(canvas.check(ifMatch, NO_ENCOUNTERS)));
		ProfileRules.Request ifUnmodified = new ProfileRules.Request("update", "QuestionnaireResponse", false, null,
				Map.of(), null, "Tue, 01 Dec 2026 10:00:00 GMT", new QuestionnaireResponse());
		assertEquals("allowed", kind(canvas.check(ifUnmodified, NO_ENCOUNTERS)));
		assertEquals("allowed", kind(canvas.check(
				search("QuestionnaireResponse", Map.of("authored", List.of("ge2026-01-01"))), NO_ENCOUNTERS)));
		assertEquals("unsupported-search", kind(canvas.check(
				search("QuestionnaireResponse", Map.of("_lastUpdated", List.of("ge2026-01-01"))), NO_ENCOUNTERS)));
	}

	@Test
	void medplumRefusesLargeStrictTransactionsInItsOwnWords() throws Exception {
		ProfileRules medplum = rules("medplum-like");
		Bundle tx = new Bundle().setType(Bundle.BundleType.TRANSACTION);
		for (int i = 0; i < 9; i++) {
			Bundle.BundleEntryRequestComponent req = tx.addEntry().setResource(new QuestionnaireResponse()
					.setIdentifier(new Identifier().setValue("x" + i))).getRequest();
			req.setMethod(Bundle.HTTPVerb.POST).setUrl("QuestionnaireResponse");
		}
		assertEquals("allowed", kind(medplum.checkBundle(tx, NO_ENCOUNTERS)), "no conditional entry: no strict isolation");
		tx.getEntryFirstRep().getRequest().setIfNoneExist("identifier=x0");
		Optional<ProfileRules.Refusal> refused = medplum.checkBundle(tx, NO_ENCOUNTERS);
		assertEquals("transaction-limit", kind(refused));
		assertEquals("Transaction requires strict isolation but has too many entries", refused.get().diagnostics());
		tx.getEntry().remove(8);
		assertEquals("allowed", kind(medplum.checkBundle(tx, NO_ENCOUNTERS)), "8 entries is the limit");
	}

	@Test
	void testAccessIsHonouredOnlyFromLoopbackAndOnlyForAll() {
		assertTrue(ProfileInterceptor.testAccessHonoured("all", "127.0.0.1"));
		assertTrue(ProfileInterceptor.testAccessHonoured("all", "127.8.9.10"));
		assertTrue(ProfileInterceptor.testAccessHonoured("all", "::1"));
		assertTrue(ProfileInterceptor.testAccessHonoured("all", "0:0:0:0:0:0:0:1"));
		assertFalse(ProfileInterceptor.testAccessHonoured("all", "10.0.0.5"));
		assertFalse(ProfileInterceptor.testAccessHonoured("all", "192.168.1.20"));
		assertFalse(ProfileInterceptor.testAccessHonoured("all", "fe80::1"));
		assertFalse(ProfileInterceptor.testAccessHonoured("all", "localhost"), "names are never resolved or trusted");
		assertFalse(ProfileInterceptor.testAccessHonoured("all", ""));
		assertFalse(ProfileInterceptor.testAccessHonoured("all", null));
		assertFalse(ProfileInterceptor.testAccessHonoured("yes", "127.0.0.1"));
		assertFalse(ProfileInterceptor.testAccessHonoured("ALL", "127.0.0.1"));
	}
}
