package dev.rejectionfhir.hapi.profiles;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.interceptor.api.Hook;
import ca.uhn.fhir.interceptor.api.Interceptor;
import ca.uhn.fhir.interceptor.api.Pointcut;
import ca.uhn.fhir.jpa.api.dao.DaoRegistry;
import ca.uhn.fhir.rest.api.RestOperationTypeEnum;
import ca.uhn.fhir.rest.api.server.RequestDetails;
import ca.uhn.fhir.rest.server.exceptions.BaseServerResponseException;
import ca.uhn.fhir.rest.server.exceptions.ResourceGoneException;
import ca.uhn.fhir.rest.server.exceptions.ResourceNotFoundException;
import ca.uhn.fhir.rest.server.servlet.ServletRequestDetails;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.IdType;
import org.hl7.fhir.r4.model.OperationOutcome;

/**
 * Enforces one {@link Profile} on the RestfulServer it is registered with: every request is
 * checked before HAPI handles it, and a refusal is answered with the profile's status code and an
 * OperationOutcome whose diagnostics say what was refused and what is allowed instead.
 *
 * <p>Test access: a request carrying {@value #TEST_ACCESS_HEADER}: all from a loopback address
 * skips every check (tests read everything written; {@code rejection-fhir seed} writes what the
 * profile refuses). From any other address, or with another value, the header is refused.
 */
@Interceptor
public final class ProfileInterceptor {

	public static final String TEST_ACCESS_HEADER = "X-Rfhir-Test-Access";

	private final ProfileRules rules;
	private final DaoRegistry daoRegistry;
	private final FhirContext fhirContext;

	public ProfileInterceptor(Profile profile, DaoRegistry daoRegistry, FhirContext fhirContext) {
		this.rules = new ProfileRules(profile);
		this.daoRegistry = daoRegistry;
		this.fhirContext = fhirContext;
	}

	/** Whether the test-access header is honoured: value "all", from 127.0.0.0/8 or ::1 only. */
	public static boolean testAccessHonoured(String headerValue, String remoteAddress) {
		if (!"all".equals(headerValue) || remoteAddress == null || remoteAddress.isBlank()) {
			return false;
		}
		// Literal addresses only: a name must never trigger a DNS lookup (or be trusted).
		String literal = remoteAddress.replace("[", "").replace("]", "");
		int zone = literal.indexOf('%');
		if (zone >= 0) {
			literal = literal.substring(0, zone);
		}
		boolean ipv4 = literal.matches("\\d{1,3}(\\.\\d{1,3}){3}");
		boolean ipv6 = literal.contains(":") && literal.matches("[0-9a-fA-F:.]+");
		if (!ipv4 && !ipv6) {
			return false;
		}
		try {
			return InetAddress.getByName(literal).isLoopbackAddress();
		} catch (UnknownHostException e) {
			return false;
		}
	}

	@Hook(Pointcut.SERVER_INCOMING_REQUEST_PRE_HANDLED)
	public void preHandled(RequestDetails request, ServletRequestDetails servletRequest, RestOperationTypeEnum operation) {
		String access = request.getHeader(TEST_ACCESS_HEADER);
		if (access != null) {
			String remote = servletRequest == null ? null : servletRequest.getServletRequest().getRemoteAddr();
			if (testAccessHonoured(access.trim(), remote)) {
				return;
			}
			throw refusal(new ProfileRules.Refusal("test-access", TEST_ACCESS_HEADER
					+ " is honoured only with the value \"all\" and only from a loopback address (127.0.0.1, ::1)"));
		}

		Optional<ProfileRules.Refusal> refusal;
		if (operation == RestOperationTypeEnum.TRANSACTION) {
			IBaseResource body = resourceOf(request);
			if (!(body instanceof Bundle bundle)) {
				throw refusal(new ProfileRules.Refusal("transaction", "the body is not a Bundle"));
			}
			refusal = rules.checkBundle(bundle, ref -> encounterExists(ref, request));
		} else {
			ProfileRules.Request r = describe(request, operation);
			refusal = rules.check(r, ref -> encounterExists(ref, request));
			if (refusal.isEmpty() && r.ifUnmodifiedSince() != null
					&& rules.profile().ifUnmodifiedSince() == Profile.HeaderMode.SUPPORTED) {
				refusal = checkUnmodifiedSince(request, r);
			}
		}
		if (refusal.isPresent()) {
			throw refusal(refusal.get());
		}
	}

	/**
	 * Update-as-create (PUT to an id that does not exist yet) is only known once HAPI has looked the
	 * id up, so it is refused here, just before the new resource would be stored.
	 */
	@Hook(Pointcut.STORAGE_PRESTORAGE_RESOURCE_CREATED)
	public void beforeCreate(IBaseResource resource, RequestDetails request) {
		if (request == null || request.getRestOperationType() != RestOperationTypeEnum.UPDATE) {
			return;
		}
		if (request.getHeader(TEST_ACCESS_HEADER) != null) {
			return; // only reachable when honoured: preHandled refuses it otherwise
		}
		Profile.ResourceRule rule = rules.profile().resource(resource.fhirType());
		if (rule != null && rule.conditionalUpdate()
				&& request.getConditionalUrl(RestOperationTypeEnum.UPDATE) != null) {
			return; // a conditional update (PUT Type?criteria) creates when nothing matches: FHIR's rule
		}
		if (rule != null && !rule.updateCreate()) {
			throw refusal(new ProfileRules.Refusal("unsupported-interaction", rules.profile().name() + " (imitating "
					+ rules.profile().imitates() + "): " + resource.fhirType()
					+ " update-as-create (PUT to an id that does not exist) is not supported; use create (POST)"));
		}
	}

	private BaseServerResponseException refusal(ProfileRules.Refusal refusal) {
		Profile.Answer answer = rules.profile().answer(refusal.kind());
		OperationOutcome outcome = new OperationOutcome();
		outcome.addIssue()
				.setSeverity(OperationOutcome.IssueSeverity.ERROR)
				.setCode(OperationOutcome.IssueType.fromCode(answer.issueCode()))
				.setDiagnostics(refusal.diagnostics())
				.getDetails().setText(refusal.diagnostics());
		BaseServerResponseException e = BaseServerResponseException.newInstance(answer.status(), refusal.diagnostics());
		e.setOperationOutcome(outcome);
		return e;
	}

	private ProfileRules.Request describe(RequestDetails request, RestOperationTypeEnum operation) {
		String type = request.getResourceName();
		boolean hasId = request.getId() != null && request.getId().hasIdPart();
		String interaction;
		boolean conditional = false;
		String op = null;
		switch (operation) {
			case READ -> interaction = "read";
			case VREAD -> interaction = "vread";
			case CREATE -> {
				interaction = "create";
				String ifNoneExist = request.getHeader("If-None-Exist");
				conditional = ifNoneExist != null && !ifNoneExist.isBlank();
			}
			case UPDATE -> {
				interaction = "update";
				conditional = !hasId;
			}
			case PATCH -> {
				interaction = "patch";
				conditional = !hasId;
			}
			case DELETE -> {
				interaction = "delete";
				conditional = !hasId;
			}
			case SEARCH_TYPE -> interaction = "search-type";
			case SEARCH_SYSTEM -> interaction = "search-system";
			case HISTORY_INSTANCE -> interaction = "history-instance";
			case HISTORY_TYPE -> interaction = "history-type";
			case HISTORY_SYSTEM -> interaction = "history-system";
			case METADATA -> interaction = "capabilities";
			case GET_PAGE -> interaction = "page";
			case VALIDATE -> {
				interaction = "operation";
				op = "$validate";
			}
			case EXTENDED_OPERATION_SERVER, EXTENDED_OPERATION_TYPE, EXTENDED_OPERATION_INSTANCE -> {
				interaction = "operation";
				op = request.getOperation();
				if (op != null && !op.startsWith("$")) {
					op = "$" + op;
				}
			}
			default -> {
				interaction = "operation";
				op = operation.getCode();
			}
		}
		Map<String, List<String>> params = new LinkedHashMap<>();
		if (request.getParameters() != null) {
			request.getParameters().forEach((k, v) -> params.put(k, Arrays.asList(v)));
		}
		IBaseResource resource = ("create".equals(interaction) || "update".equals(interaction)) ? resourceOf(request) : null;
		return new ProfileRules.Request(interaction, type, conditional, op, params,
				request.getHeader("If-Match"), request.getHeader("If-Unmodified-Since"), resource);
	}

	private IBaseResource resourceOf(RequestDetails request) {
		if (request.getResource() != null) {
			return request.getResource();
		}
		byte[] body = request.loadRequestContents();
		if (body == null || body.length == 0) {
			return null;
		}
		String text = new String(body, StandardCharsets.UTF_8).trim();
		return text.startsWith("<")
				? fhirContext.newXmlParser().parseResource(text)
				: fhirContext.newJsonParser().parseResource(text);
	}

	private boolean encounterExists(String reference, RequestDetails request) {
		IdType id = new IdType(reference);
		if (!"Encounter".equals(id.getResourceType()) || !id.hasIdPart() || id.isAbsolute()) {
			return false;
		}
		try {
			daoRegistry.getResourceDao("Encounter").read(id.toUnqualifiedVersionless(), request);
			return true;
		} catch (ResourceNotFoundException | ResourceGoneException e) {
			return false;
		}
	}

	private Optional<ProfileRules.Refusal> checkUnmodifiedSince(RequestDetails request, ProfileRules.Request r) {
		if (request.getId() == null || !request.getId().hasIdPart() || r.resourceType() == null) {
			return Optional.empty();
		}
		Instant since;
		try {
			since = ZonedDateTime.parse(r.ifUnmodifiedSince().trim(), DateTimeFormatter.RFC_1123_DATE_TIME).toInstant();
		} catch (DateTimeParseException e) {
			return Optional.of(new ProfileRules.Refusal("version-header", rules.profile().name()
					+ ": If-Unmodified-Since must be an HTTP-date (RFC 7231), e.g. Tue, 01 Dec 2026 10:00:00 GMT"));
		}
		IBaseResource current;
		try {
			current = daoRegistry.getResourceDao(r.resourceType())
					.read(new IdType(r.resourceType(), request.getId().getIdPart()), request);
		} catch (ResourceNotFoundException | ResourceGoneException e) {
			return Optional.empty(); // HAPI answers the missing resource itself
		}
		Instant lastUpdated = current.getMeta().getLastUpdated().toInstant();
		// HTTP-dates have whole seconds: compare at that precision.
		if (lastUpdated.getEpochSecond() > since.getEpochSecond()) {
			return Optional.of(new ProfileRules.Refusal("precondition-failed", rules.profile().name() + " (imitating "
					+ rules.profile().imitates() + "): " + r.resourceType() + "/" + request.getId().getIdPart()
					+ " was modified at " + lastUpdated + ", after If-Unmodified-Since " + since));
		}
		return Optional.empty();
	}
}
