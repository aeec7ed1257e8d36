package dev.rejectionfhir.hapi.profiles;

import ca.uhn.fhir.interceptor.api.Hook;
import ca.uhn.fhir.interceptor.api.Interceptor;
import ca.uhn.fhir.interceptor.api.Pointcut;
import ca.uhn.fhir.interceptor.model.ReadPartitionIdRequestDetails;
import ca.uhn.fhir.interceptor.model.RequestPartitionId;
import ca.uhn.fhir.jpa.partition.IRequestPartitionHelperSvc;
import org.hl7.fhir.instance.model.api.IBaseResource;

/**
 * Puts everything a RestfulServer stores or reads into one HAPI partition: a profile's own, or the
 * default partition for the plain server. Registered on that server only, so the partition follows
 * the URL the request came in on (/fhir/ or /fhir/&lt;profile&gt;/).
 *
 * <p>Types HAPI keeps out of partitions (terminology and conformance resources such as CodeSystem,
 * ValueSet, StructureDefinition, SearchParameter) stay in the default partition, shared by every
 * endpoint; Questionnaire is made partitionable by {@link ProfilePartitionHelperSvc}.
 */
@Interceptor
public final class PartitionSelector {

	private final RequestPartitionId partition;
	private final IRequestPartitionHelperSvc helper;

	public PartitionSelector(RequestPartitionId partition, IRequestPartitionHelperSvc helper) {
		this.partition = partition;
		this.helper = helper;
	}

	@Hook(Pointcut.STORAGE_PARTITION_IDENTIFY_CREATE)
	public RequestPartitionId identifyCreate(IBaseResource resource) {
		return forType(resource == null ? null : resource.fhirType());
	}

	@Hook(Pointcut.STORAGE_PARTITION_IDENTIFY_READ)
	public RequestPartitionId identifyRead(ReadPartitionIdRequestDetails details) {
		return forType(details == null ? null : details.getResourceType());
	}

	private RequestPartitionId forType(String type) {
		if (type != null && !helper.isResourcePartitionable(type)) {
			return RequestPartitionId.defaultPartition();
		}
		return partition;
	}
}
