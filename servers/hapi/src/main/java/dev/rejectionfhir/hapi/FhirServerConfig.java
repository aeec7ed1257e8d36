package dev.rejectionfhir.hapi;

import ca.uhn.fhir.batch2.jobs.export.BulkDataExportProvider;
import ca.uhn.fhir.interceptor.model.RequestPartitionId;
import ca.uhn.fhir.jpa.api.dao.DaoRegistry;
import ca.uhn.fhir.jpa.partition.IRequestPartitionHelperSvc;
import ca.uhn.fhir.rest.server.ETagSupportEnum;
import dev.rejectionfhir.hapi.profiles.JobPartitionSelector;
import dev.rejectionfhir.hapi.profiles.PartitionSelector;
import ca.uhn.fhir.interceptor.api.IInterceptorService;
import dev.rejectionfhir.hapi.profiles.Profile;
import dev.rejectionfhir.hapi.profiles.ProfileCapabilityStatementProvider;
import dev.rejectionfhir.hapi.profiles.ProfileInterceptor;
import dev.rejectionfhir.hapi.profiles.ProfilePartitionHelperSvc;
import jakarta.servlet.ServletRegistration;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.springframework.beans.factory.support.BeanDefinitionRegistry;
import org.springframework.beans.factory.support.BeanDefinitionRegistryPostProcessor;
import org.springframework.beans.factory.support.RootBeanDefinition;
import org.springframework.boot.web.servlet.ServletContextInitializer;
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
 * a {@link RestfulServer} mounted at /fhir/*, and one more per EHR profile at /fhir/&lt;profile&gt;/*.
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

	/**
	 * Partitioning keeps each EHR profile's data apart: the plain server at /fhir/ uses the default
	 * partition, each profile at /fhir/&lt;profile&gt;/ its own (see {@link PartitionSelector}).
	 * Unnamed mode: partitions are plain numbers from the profile files, with no partition table
	 * entries to create first.
	 */
	@Bean
	public PartitionSettings partitionSettings() {
		PartitionSettings settings = new PartitionSettings();
		settings.setPartitioningEnabled(true);
		settings.setUnnamedPartitionMode(true);
		// HAPI guards conditional creates with a unique search-URL row; without this the row is
		// global, and the same If-None-Exist in two partitions (e.g. publishing one worksheet to
		// two profiles) fails with HAPI-2745 instead of creating one resource in each.
		settings.setConditionalCreateDuplicateIdentifiersEnabled(true);
		return settings;
	}

	/**
	 * Swaps HAPI's partition helper for {@link ProfilePartitionHelperSvc} (Questionnaire becomes
	 * partitionable). A registry post-processor replaces the bean definition before anything is
	 * created, so every HAPI bean gets ours; static so Spring can run it before this class exists.
	 */
	@Bean
	public static BeanDefinitionRegistryPostProcessor profilePartitionHelperDefinition() {
		return new BeanDefinitionRegistryPostProcessor() {
			@Override
			public void postProcessBeanDefinitionRegistry(BeanDefinitionRegistry registry) throws BeansException {
				String name = "requestPartitionHelperService";
				if (registry.containsBeanDefinition(name)) {
					registry.removeBeanDefinition(name);
				}
				registry.registerBeanDefinition(name, new RootBeanDefinition(ProfilePartitionHelperSvc.class));
			}

			@Override
			public void postProcessBeanFactory(ConfigurableListableBeanFactory beanFactory) throws BeansException {}
		};
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

	/** Everything a RestfulServer needs, shared by the plain server and every profile's. */
	record ServerParts(
			FhirContext fhirContext,
			ResourceProviderFactory resourceProviders,
			JpaSystemProvider<?, ?> systemProvider,
			IFhirSystemDao<?, ?> systemDao,
			JpaStorageSettings storageSettings,
			ISearchParamRegistry searchParamRegistry,
			IValidationSupport validationSupport,
			DatabaseBackedPagingProvider pagingProvider,
			BulkDataExportProvider bulkDataExportProvider,
			IRequestPartitionHelperSvc partitionHelper,
			DaoRegistry daoRegistry) {}

	@Bean
	public ServerParts serverParts(
			FhirContext fhirContext,
			@Qualifier("myResourceProvidersR4") ResourceProviderFactory resourceProviders,
			@Qualifier("mySystemProviderR4") JpaSystemProvider<?, ?> systemProvider,
			IFhirSystemDao<?, ?> systemDao,
			JpaStorageSettings storageSettings,
			ISearchParamRegistry searchParamRegistry,
			IValidationSupport validationSupport,
			DatabaseBackedPagingProvider pagingProvider,
			BulkDataExportProvider bulkDataExportProvider,
			IRequestPartitionHelperSvc partitionHelper,
			DaoRegistry daoRegistry,
			IInterceptorService interceptorService) {
		// Background jobs (bulk export steps) carry no HTTP request, hence no endpoint partition.
		interceptorService.registerInterceptor(new JobPartitionSelector());
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

		// Search results are paged through the database so "next" links survive between requests.
		pagingProvider.setDefaultPageSize(20);
		pagingProvider.setMaximumPageSize(500);
		return new ServerParts(fhirContext, resourceProviders, systemProvider, systemDao, storageSettings,
				searchParamRegistry, validationSupport, pagingProvider, bulkDataExportProvider, partitionHelper, daoRegistry);
	}

	/** A RestfulServer with every JPA provider, storing into {@code partition}. */
	static RestfulServer newRestfulServer(ServerParts parts, RequestPartitionId partition) {
		RestfulServer server = new RestfulServer(parts.fhirContext());
		// One provider per resource type: CRUD, search, _history, $validate, conditional ops.
		server.registerProviders(parts.resourceProviders().createProviders());
		// System level: transaction/batch Bundles, /_history, $meta, ...
		server.registerProvider(parts.systemProvider());
		// $export, $export-poll-status (results are Binary resources holding NDJSON).
		server.registerProvider(parts.bulkDataExportProvider());
		server.setPagingProvider(parts.pagingProvider());
		server.registerInterceptor(new PartitionSelector(partition, parts.partitionHelper()));
		return server;
	}

	/** The plain server at /fhir/: all of HAPI, in the default partition. */
	@Bean
	public RestfulServer restfulServer(ServerParts parts) {
		RestfulServer server = newRestfulServer(parts, RequestPartitionId.defaultPartition());
		// /metadata that reflects the JPA server's real search parameters.
		JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
				server, parts.systemDao(), parts.storageSettings(), parts.searchParamRegistry(), parts.validationSupport());
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

	/**
	 * One servlet per EHR profile at /fhir/&lt;name&gt;/* (a longer servlet mapping wins over /fhir/*),
	 * each a RestfulServer of its own: its partition, the profile's interceptor, and a /metadata
	 * generated from the profile file. Profiles are read at startup from the folder named by
	 * rfhir.hapi.profiles / RFHIR_HAPI_PROFILES (scripts/hapi passes servers/profiles).
	 */
	@Bean
	public ServletContextInitializer profileServlets(ServerParts parts) {
		return servletContext -> {
			for (Profile profile : loadProfiles()) {
				RestfulServer server = newRestfulServer(parts, RequestPartitionId.fromPartitionId(profile.partitionId()));
				server.registerInterceptor(new ProfileInterceptor(profile, parts.daoRegistry(), parts.fhirContext()));
				server.setServerConformanceProvider(new ProfileCapabilityStatementProvider(profile, parts.fhirContext()));
				if (!profile.etag()) {
					server.setETagSupport(ETagSupportEnum.DISABLED);
				}
				ServletRegistration.Dynamic registration = servletContext.addServlet("fhir-" + profile.name(), server);
				registration.addMapping("/fhir/" + profile.name() + "/*");
				registration.setLoadOnStartup(1);
			}
		};
	}

	static List<Profile> loadProfiles() {
		String folder = HapiServerApplication.setting("rfhir.hapi.profiles", "RFHIR_HAPI_PROFILES", "");
		List<Profile> profiles = new ArrayList<>();
		if (folder.isBlank()) {
			return profiles;
		}
		Set<Integer> partitions = new HashSet<>();
		try (Stream<Path> files = Files.list(Path.of(folder))) {
			for (Path file : files.filter(f -> f.toString().endsWith(".json")).sorted().toList()) {
				Profile profile = Profile.load(file);
				if (!file.getFileName().toString().equals(profile.name() + ".json")) {
					throw new IllegalStateException(file + ": name must match the file name");
				}
				if (!partitions.add(profile.partitionId())) {
					throw new IllegalStateException(file + ": partitionId " + profile.partitionId() + " is used twice");
				}
				profiles.add(profile);
			}
		} catch (IOException e) {
			throw new UncheckedIOException("cannot read the EHR profiles in " + folder, e);
		}
		return profiles;
	}
}
