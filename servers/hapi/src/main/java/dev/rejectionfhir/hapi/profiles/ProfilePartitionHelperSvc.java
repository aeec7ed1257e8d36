package dev.rejectionfhir.hapi.profiles;

import ca.uhn.fhir.jpa.partition.RequestPartitionHelperSvc;

/**
 * HAPI's partition helper, except that Questionnaire may live in a partition. HAPI keeps
 * Questionnaire with the shared conformance resources by default; here each profile holds the
 * Questionnaires its EHR would hold, and publishing to one profile must not show up in another.
 */
public class ProfilePartitionHelperSvc extends RequestPartitionHelperSvc {

	@Override
	public boolean isResourcePartitionable(String resourceType) {
		return "Questionnaire".equals(resourceType) || super.isResourcePartitionable(resourceType);
	}
}
