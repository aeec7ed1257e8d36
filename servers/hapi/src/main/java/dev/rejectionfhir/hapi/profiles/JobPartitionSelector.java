package dev.rejectionfhir.hapi.profiles;

import ca.uhn.fhir.batch2.api.IJobInstance;
import ca.uhn.fhir.batch2.model.JobInstance;
import ca.uhn.fhir.interceptor.api.Hook;
import ca.uhn.fhir.interceptor.api.Interceptor;
import ca.uhn.fhir.interceptor.api.Pointcut;
import ca.uhn.fhir.interceptor.model.RequestPartitionId;
import ca.uhn.fhir.rest.api.server.RequestDetails;
import ca.uhn.fhir.rest.api.server.SystemRequestDetails;
import ca.uhn.fhir.rest.api.server.bulk.BulkExportJobParameters;

/**
 * Partitions for work that no HTTP request carries: HAPI's background jobs. Registered on HAPI's
 * global interceptor service (the per-endpoint {@link PartitionSelector}s only see their own
 * servlet's requests).
 *
 * <ul>
 *   <li>A bulk export's job steps run in the partition the export was started from (HAPI keeps it
 *       in the job parameters), so /fhir/epic-like/Group/x/$export exports epic-like's data.</li>
 *   <li>Any other internal request without a partition uses the default one, as it would on an
 *       unpartitioned server. Ordered last, so an endpoint's own selector always wins.</li>
 * </ul>
 */
@Interceptor
public final class JobPartitionSelector {

	static final String BULK_EXPORT_JOB = "BULK_EXPORT";

	@Hook(Pointcut.STORAGE_BATCH_TASK_NEW_REQUEST_DETAILS)
	public void jobRequest(IJobInstance instance, RequestDetails details) {
		if (instance instanceof JobInstance job && BULK_EXPORT_JOB.equals(job.getJobDefinitionId())
				&& details instanceof SystemRequestDetails request && request.getRequestPartitionId() == null) {
			RequestPartitionId partition = job.getParameters(BulkExportJobParameters.class).getPartitionIdForSecurity();
			if (partition != null) {
				request.setRequestPartitionId(partition);
			}
		}
	}

	@Hook(value = Pointcut.STORAGE_PARTITION_IDENTIFY_CREATE, order = Integer.MAX_VALUE)
	public RequestPartitionId identifyCreate(RequestDetails request) {
		return fallback(request);
	}

	@Hook(value = Pointcut.STORAGE_PARTITION_IDENTIFY_READ, order = Integer.MAX_VALUE)
	public RequestPartitionId identifyRead(RequestDetails request) {
		return fallback(request);
	}

	private static RequestPartitionId fallback(RequestDetails request) {
		if (request == null || request instanceof SystemRequestDetails) {
			return RequestPartitionId.defaultPartition();
		}
		return null; // an HTTP request: its endpoint's PartitionSelector decides
	}
}
