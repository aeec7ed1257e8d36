package dev.rejectionfhir.hapi;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.boot.Banner;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.ImportAutoConfiguration;
import org.springframework.boot.autoconfigure.context.PropertyPlaceholderAutoConfiguration;
import org.springframework.boot.autoconfigure.web.embedded.EmbeddedWebServerFactoryCustomizerAutoConfiguration;
import org.springframework.boot.autoconfigure.web.servlet.ServletWebServerFactoryAutoConfiguration;
import org.springframework.context.annotation.Import;

/**
 * Entry point of the local HAPI FHIR JPA server (FHIR R4, H2) used by rejection-fhir's
 * integration tests and demo.
 *
 * <p>We deliberately do NOT use {@code @SpringBootApplication}/{@code @EnableAutoConfiguration}:
 * hapi-fhir-jpaserver-base drags in springdoc, Thymeleaf, Jackson, Elasticsearch, Flyway and
 * Spring Data auto-configurations that would either slow startup or fight with HAPI's own
 * JPA wiring. Only the embedded-Tomcat pieces of Spring Boot are imported; everything else is
 * HAPI's published Spring configuration plus the few beans HAPI expects the host to supply
 * (see {@link FhirServerConfig}).
 *
 * <p>Settings (system property, then environment variable, then default):
 * <ul>
 *   <li>{@code rfhir.hapi.port} / {@code RFHIR_HAPI_PORT} - HTTP port, default 8080</li>
 *   <li>{@code rfhir.hapi.db} / {@code RFHIR_HAPI_DB} - JDBC URL, default an in-memory H2</li>
 *   <li>{@code rfhir.hapi.lenient-parsing} / {@code RFHIR_HAPI_LENIENT_PARSING} - "true" to
 *       accept invalid coded values when parsing (see {@link FhirServerConfig#restfulServer})</li>
 *   <li>{@code rfhir.hapi.log} - log file (system property only, read by logback.xml)</li>
 * </ul>
 * The server always binds to 127.0.0.1; base URL is http://127.0.0.1:PORT/fhir.
 */
@SpringBootConfiguration
@ImportAutoConfiguration({
	PropertyPlaceholderAutoConfiguration.class,
	// Embedded Tomcat + server.* properties (port, address, tomcat.relaxed-query-chars).
	ServletWebServerFactoryAutoConfiguration.class,
	EmbeddedWebServerFactoryCustomizerAutoConfiguration.class
})
@Import({
	// R4 FhirContext, all R4 DAOs/resource providers, system DAO/provider; imports JpaConfig.
	JpaR4Config.class,
	// Beans JpaConfig leaves to the host (paging provider, fulltext svc stub, stale search cleanup, ...).
	HapiJpaConfig.class,
	// BaseTransactionProcessor autowires a ThreadPoolFactory that no HAPI config above provides.
	ThreadPoolFactoryConfig.class,
	// Batch2 engine (job persistence in the JPA DB, maintenance service) and the job definitions
	// (bulk export, reindex, ...). Bulk export needs both.
	JpaBatch2Config.class,
	Batch2JobsConfig.class,
	// In-memory message broker (IBrokerClient) that batch2 sends its work chunks through. Despite
	// the package name this is not subscription support; the subscription matcher/delivery
	// configs are deliberately left out.
	SubscriptionChannelConfig.class,
	FhirServerConfig.class,
	// $install-package: FHIR NPM packages through HAPI's package installer (tests, demo).
	PackageInstallConfig.class
})
public class HapiServerApplication {

	public static void main(String[] args) {
		SpringApplication app = new SpringApplication(HapiServerApplication.class);
		app.setBannerMode(Banner.Mode.OFF);
		app.setDefaultProperties(defaultProperties());
		app.run(args);
		System.out.println("HAPI FHIR server ready at http://127.0.0.1:" + port() + "/fhir");
	}

	static String setting(String sysProp, String envVar, String fallback) {
		String value = System.getProperty(sysProp);
		if (value == null || value.isBlank()) {
			value = System.getenv(envVar);
		}
		return (value == null || value.isBlank()) ? fallback : value;
	}

	static String port() {
		return setting("rfhir.hapi.port", "RFHIR_HAPI_PORT", "8080");
	}

	private static Map<String, Object> defaultProperties() {
		Map<String, Object> props = new LinkedHashMap<>();
		props.put("server.port", port());
		// Loopback only: this server has no security at all.
		props.put("server.address", "127.0.0.1");
		// FHIR token searches use '|' (identifier=system|value); Tomcat rejects it unescaped otherwise.
		props.put("server.tomcat.relaxed-query-chars", "|,{,},[,]");
		// HAPI's JPA beans reference each other cyclically (same setting as HAPI's starter).
		props.put("spring.main.allow-circular-references", "true");
		return props;
	}
}
