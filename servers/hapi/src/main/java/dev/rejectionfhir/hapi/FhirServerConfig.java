package dev.rejectionfhir.hapi;

import ca.uhn.fhir.batch2.jobs.export.BulkDataExportProvider;
import ca.uhn.fhir.batch2.maintenance.JobMaintenanceServiceImpl;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirPostgresDialect;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.provider.JpaSystemProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.parser.LenientErrorHandler;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import jakarta.persistence.EntityManagerFactory;
import java.util.HashMap;
import java.util.Map;
import javax.sql.DataSource;
import org.apache.commons.dbcp2.BasicDataSource;
import org.springframework.beans.BeansException;
import org.springframework.beans.factory.annotation.Qualifier;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;

/**
 * The beans HAPI's JPA configuration expects the host application to provide (storage
 * settings, data source, entity manager factory, transaction manager), plus the REST layer:
 * a {@link RestfulServer} mounted at /fhir/*.
 */
@Configuration
public class FhirServerConfig {

	/** How often the batch2 maintenance pass runs. HAPI's default is once a minute, which makes
	 * a bulk export take a minute or more; once a second lets one finish in a few seconds. */
	static final long BATCH2_MAINTENANCE_MILLIS = 1000;

	@Bean
	public JpaStorageSettings storageSettings() {
		JpaStorageSettings s = new JpaStorageSettings();
		// Client-assigned ids of any shape (also purely numeric); server-assigned ids are then UUIDs
		// so the two can never collide.
		s.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ANY);
		s.setResourceServerIdStrategy(JpaStorageSettings.IdStrategyEnum.UUID);
		// Never answer a search from an earlier identical search: tests must see fresh data.
		s.setReuseCachedSearchResultsForMillis(null);
		// References to resources on other servers are stored as-is instead of rejected.
		s.setAllowExternalReferences(true);
		// Let tests clean up after themselves: conditional deletes matching many, and $expunge.
		s.setAllowMultipleDelete(true);
		s.setExpungeEnabled(true);
		// When a gated batch2 step yields a single chunk, run maintenance right away instead of
		// waiting for the next scheduled pass (HAPI's own tests use this).
		s.setJobFastTrackingEnabled(true);
		return s;
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings(); // partitioning off
	}

	/** The JDBC URL: H2 (in memory by default, DB_CLOSE_DELAY=-1 keeps it alive while the
	 * pool has no open connection) or PostgreSQL (jdbc:postgresql:..., from scripts/hapi). */
	static String databaseUrl() {
		return HapiServerApplication.setting("rfhir.hapi.db", "RFHIR_HAPI_DB", "jdbc:h2:mem:hapi;DB_CLOSE_DELAY=-1");
	}

	static boolean onPostgres() {
		return databaseUrl().startsWith("jdbc:postgresql:");
	}

	@Bean(destroyMethod = "close")
	public BasicDataSource dataSource() {
		BasicDataSource ds = new BasicDataSource();
		ds.setUrl(databaseUrl());
		if (onPostgres()) {
			ds.setDriverClassName("org.postgresql.Driver"); // user and password in the URL
		} else {
			ds.setDriverClassName("org.h2.Driver");
			ds.setUsername("sa");
			ds.setPassword("");
		}
		// Request threads, search prefetch threads and batch2 workers all take connections.
		ds.setMaxTotal(20);
		return ds;
	}

	@Bean
	@Primary
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			ConfigurableListableBeanFactory beanFactory,
			DataSource dataSource,
			FhirContext fhirContext,
			JpaStorageSettings storageSettings) {
		// HAPI's factory registers its Hibernate services (sequence massager, dialect settings)
		// and the packages holding its entities.
		LocalContainerEntityManagerFactoryBean emf =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
		emf.setPersistenceUnitName("HAPI_PU");
		emf.setDataSource(dataSource);

		Map<String, Object> jpa = new HashMap<>();
		// HibernatePropertiesProvider reads the dialect back from this map.
		jpa.put("hibernate.dialect", onPostgres()
				? HapiFhirPostgresDialect.class.getName()
				: HapiFhirH2Dialect.class.getName());
		// Create the schema at startup (fresh in-memory DB, or an existing file DB).
		jpa.put("hibernate.hbm2ddl.auto", "update");
		// No Lucene/Elasticsearch indexing: plain SQL search is all we need.
		jpa.put("hibernate.search.enabled", "false");
		// Entities are listed via setPackagesToScan; skip Hibernate's own (slow) jar scanning.
		jpa.put("hibernate.archive.scanner", "org.hibernate.boot.archive.scan.internal.DisabledScanner");
		jpa.put("hibernate.jdbc.batch_size", "20");
		jpa.put("hibernate.cache.use_query_cache", "false");
		jpa.put("hibernate.cache.use_second_level_cache", "false");
		jpa.put("hibernate.format_sql", "false");
		jpa.put("hibernate.show_sql", "false");
		emf.setJpaPropertyMap(jpa);
		return emf;
	}

	@Bean
	@Primary
	public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
		return new JpaTransactionManager(entityManagerFactory);
	}

	/**
	 * Shortens the batch2 maintenance interval. Must run before the scheduler registers the job
	 * (on context refresh), hence a post-processor rather than a setter call later. Static so
	 * that Spring can create it without instantiating this configuration class early.
	 */
	@Bean
	public static BeanPostProcessor batch2MaintenanceIntervalPostProcessor() {
		return new BeanPostProcessor() {
			@Override
			public Object postProcessAfterInitialization(Object bean, String beanName) throws BeansException {
				if (bean instanceof JobMaintenanceServiceImpl maintenance) {
					maintenance.setScheduledJobFrequencyMillis(BATCH2_MAINTENANCE_MILLIS);
				}
				return bean;
			}
		};
	}

	@Bean
	public RestfulServer restfulServer(
			FhirContext fhirContext,
			@Qualifier("myResourceProvidersR4") ResourceProviderFactory resourceProviders,
			@Qualifier("mySystemProviderR4") JpaSystemProvider<?, ?> systemProvider,
			IFhirSystemDao<?, ?> systemDao,
			JpaStorageSettings storageSettings,
			ISearchParamRegistry searchParamRegistry,
			IValidationSupport validationSupport,
			DatabaseBackedPagingProvider pagingProvider,
			BulkDataExportProvider bulkDataExportProvider) {
		if (Boolean.parseBoolean(
				HapiServerApplication.setting("rfhir.hapi.lenient-parsing", "RFHIR_HAPI_LENIENT_PARSING", "false"))) {
			// Opt-in. By default HAPI rejects a body with an invalid code in a required-binding
			// element (e.g. status "bogus") with a 400 parse error, before $validate runs. Lenient
			// parsing lets $validate report it with the validator's own message (it validates the
			// raw body). Off by default because creates/updates would then silently drop such values.
			fhirContext.setParserErrorHandler(new LenientErrorHandler(false).setErrorOnInvalidValue(false));
		}

		// Provenance must say which version of a QuestionnaireResponse a note came from; HAPI
		// strips versions from stored references unless told otherwise, path by path.
		fhirContext.getParserOptions().setDontStripVersionsFromReferencesAtPaths("Provenance.entity.what");

		RestfulServer server = new RestfulServer(fhirContext);
		// One provider per resource type: CRUD, search, _history, $validate, conditional ops.
		server.registerProviders(resourceProviders.createProviders());
		// System level: transaction/batch Bundles, /_history, $meta, ...
		server.registerProvider(systemProvider);
		// $export, $export-poll-status (results are Binary resources holding NDJSON).
		server.registerProvider(bulkDataExportProvider);

		// Search results are paged through the database so "next" links survive between requests.
		pagingProvider.setDefaultPageSize(20);
		pagingProvider.setMaximumPageSize(500);
		server.setPagingProvider(pagingProvider);

		// /metadata that reflects the JPA server's real search parameters.
		JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
				server, systemDao, storageSettings, searchParamRegistry, validationSupport);
		capabilities.setImplementationDescription("rejection-fhir local HAPI FHIR R4 server");
		server.setServerConformanceProvider(capabilities);
		return server;
	}

	@Bean
	public ServletRegistrationBean<RestfulServer> fhirServlet(RestfulServer restfulServer) {
		ServletRegistrationBean<RestfulServer> registration =
				new ServletRegistrationBean<>(restfulServer, "/fhir/*");
		// Initialise the FHIR servlet at startup, so the first request (and /metadata readiness
		// checks) do not pay for it.
		registration.setLoadOnStartup(1);
		return registration;
	}
}
