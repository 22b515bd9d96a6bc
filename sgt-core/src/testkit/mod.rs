//! The conformance suite every backend runs, and doubles for tests.
//!
//! Each case is a plain `pub async fn` taking the backend as `&dyn Trait`, asserting error
//! kinds rather than messages. The `*_conformance_tests!` macros expand every case of a trait
//! into one named `#[tokio::test]`, given an expression that builds a fresh backend, so a
//! backend crate runs the whole suite with one line per trait and no list can drift. With
//! `skip_unless = GUARD`, each test first evaluates `GUARD` and returns early when it is false
//! (for suites that need an external service; the guard decides whether to skip or fail).

pub mod blobs;
pub mod doubles;
pub mod log_sink;
pub mod memory_store;
pub mod secrets;
pub mod store;

/// Expands `cases` into one `#[tokio::test]` each, calling `$module::$case(&*backend)` on a
/// backend built by `$make` (an async expression evaluated afresh for every test), when
/// `$guard` (evaluated first) is true.
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_cases {
    ($make:expr, $guard:expr, $module:path, [$($case:ident),* $(,)?]) => {
        $(
            #[::tokio::test]
            async fn $case() {
                use $module as suite;
                if !$guard {
                    return;
                }
                let backend = $make.await;
                suite::$case(&*backend).await;
            }
        )*
    };
}

/// Runs every [`store`] case against the `Store` built by `$make`
/// (an async expression returning something that derefs to a `Store`).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!($make, skip_unless = true);
    };
    ($make:expr, skip_unless = $guard:expr) => {
        $crate::conformance_cases!(
            $make,
            $guard,
            $crate::testkit::store,
            [
                enroll_creates_a_node,
                enroll_same_identity_rekeys,
                enroll_other_identity_creates_another_node,
                unknown_key_and_id_are_not_found,
                list_nodes_pages_and_filters,
                delete_node_revokes_its_key,
                last_seen_moves_forward_only,
                revoked_keys_are_listed,
                environments_round_trip,
                environment_config_is_replaced_whole,
                environment_settings_round_trip,
                saved_queries_round_trip,
                saved_query_sql_is_kept_exactly,
                labels_round_trip,
                label_membership,
                concurrent_memberships_all_land,
                approval_is_kept_and_given_once,
                config_replacement_checks_the_version,
                concurrent_versioned_replacements_lose_nothing,
                pending_queries_are_delivered_once,
                expired_queries_are_not_delivered,
                query_results_are_idempotent,
                results_for_untargeted_nodes_are_refused,
                duplicate_query_is_refused,
                carve_blocks_are_counted_once,
                carve_finish_and_list,
                broad_queries_reach_nodes_enrolled_later,
                targets_filter_by_environment_and_platform,
                cancelled_queries_are_not_delivered,
                live_queries_are_listed,
                list_queries_pages_newest_first,
                query_results_page_by_node,
                list_nodes_filters,
                listed_nodes_carry_the_host_details_summary,
                concurrent_enrolls_of_one_host_leave_one_node,
                concurrent_blocks_complete_a_carve_exactly_once,
                concurrent_reads_deliver_a_campaign_once,
                users_round_trip,
                the_last_admin_stays,
                concurrent_demotions_leave_an_admin,
                tokens_round_trip,
                audit_log_pages_newest_first,
                audit_log_filters,
                nodes_are_read_by_ids,
                nodes_are_found_by_any_name,
                host_details_are_replaced,
                secret_usage_is_counted,
            ]
        );
    };
}

/// Runs every [`secrets`] case against the `SecretStore` built by `$make`.
#[macro_export]
macro_rules! secret_store_conformance_tests {
    ($make:expr) => {
        $crate::secret_store_conformance_tests!($make, skip_unless = true);
    };
    ($make:expr, skip_unless = $guard:expr) => {
        $crate::conformance_cases!(
            $make,
            $guard,
            $crate::testkit::secrets,
            [
                secrets_add_list_revoke,
                several_secrets_per_environment,
                duplicate_secret_id_is_refused,
            ]
        );
    };
}

/// Runs every [`log_sink`] case against the [`log_sink::SinkUnderTest`] built by `$make`.
#[macro_export]
macro_rules! log_sink_conformance_tests {
    ($make:expr) => {
        $crate::log_sink_conformance_tests!($make, skip_unless = true);
    };
    ($make:expr, skip_unless = $guard:expr) => {
        $crate::conformance_cases!(
            $make,
            $guard,
            $crate::testkit::log_sink,
            [
                appended_lines_are_readable,
                empty_batch_is_accepted,
                batches_keep_their_order,
                concurrent_appends_lose_nothing,
            ]
        );
    };
}

/// Runs every [`blobs`] case against the `BlobStore` built by `$make`.
#[macro_export]
macro_rules! blob_store_conformance_tests {
    ($make:expr) => {
        $crate::blob_store_conformance_tests!($make, skip_unless = true);
    };
    ($make:expr, skip_unless = $guard:expr) => {
        $crate::conformance_cases!(
            $make,
            $guard,
            $crate::testkit::blobs,
            [
                put_get_round_trip,
                put_replaces_whole,
                missing_blob_is_not_found,
                delete_is_idempotent,
                concat_joins_in_order,
                concat_with_missing_part_is_not_found,
                read_range_reads_pieces,
            ]
        );
    };
}
