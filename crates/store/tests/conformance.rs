//! The store conformance suite: every case runs once against SQLite
//! (`sqlite::<case>`) and once against PostgreSQL (`postgres::<case>`), so the
//! two backends keep one behaviour; and the cases that stay within the
//! `Store` trait run against the test kit's memory store (`memory::<case>`),
//! so the engine's in-process tests run on the same contract.

mod cases;
mod common;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let mut harness = crate::common::Harness::sqlite().await;
                    crate::cases::$case(&mut harness).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(mut harness) = crate::common::Harness::postgres().await else { return };
                    crate::cases::$case(&mut harness).await;
                }
            )*
        }
    };
}

/// The memory store has no SQL, files or keys: the cases that reach past
/// the trait into those (keys, encryption at rest, restarts, an audit row
/// edited behind the store's back) are not listed.
macro_rules! memory_conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let mut harness = crate::common::Harness::memory();
                    crate::cases::$case(&mut harness).await;
                }
            )*
        }
    };
}

conformance!(
    ping_answers,
    create_session_starts_empty,
    begin_turn_assigns_seqs,
    begin_turn_returns_history,
    duplicate_client_message_id_writes_nothing,
    concurrent_duplicates_end_as_duplicate,
    concurrent_turns_in_one_session_start_once,
    concurrent_turns_across_sessions_all_start,
    one_failing_write_fails_alone,
    not_found_for_wrong_owner_tenant_or_id,
    in_progress_while_streaming,
    closed_session_refuses_turns,
    human_session_stores_only_the_user_message,
    page_context_is_kept_as_the_sessions_latest,
    checkpoint_renews_lease_and_saves_text,
    finish_ends_streaming_once,
    reap_expired_leases_interrupts,
    reap_node_leases_interrupts_only_that_node,
    list_messages_order_limit_before_seq,
    messages_after_oldest_first_from_a_cursor,
    list_sessions_keyset_paging_with_ties,
    delete_session_removes_messages,
    cap_on_write_keeps_the_newest_messages_and_counts,
    cap_never_deletes_what_was_just_written,
    history_leaves_out_messages_past_retention,
    consecutive_turns_see_what_was_written,
    sweep_deletes_what_is_older_than_the_days,
    tenants_crud,
    restart_keeps_everything,
    wrong_keys_refuse_to_open,
    rotated_keys_read_old_content,
    connect_refuses_unmigrated_database,
    content_is_encrypted_at_rest,
    link_moves_the_visitors_sessions_once,
    linked_visitors_since_a_time_oldest_first,
    concurrent_links_of_one_visitor_link_once,
    conversation_ids_are_kept_per_session_and_key,
    admin_list_filters_sorts_and_pages,
    close_session_closes_and_refuses_turns,
    runtime_settings_round_trip,
    takeover_writes_status_note_and_seq_at_once,
    takeover_refusals,
    agent_messages_only_while_human,
    agent_messages_and_notes_keep_the_cap,
    takeover_and_turns_race_without_seq_gaps,
    concurrent_reservations_never_overshoot,
    subject_budgets_are_per_subject,
    budgets_are_checked_last,
    finished_turns_add_their_usage_once,
    audit_appends_form_one_chain_and_edits_are_found,
    memory_put_get_list_delete_and_clear,
    memory_key_limit_allows_overwrites,
    memory_is_per_tenant_and_subject,
    concurrent_writes_of_one_key_end_with_one_value,
    concurrent_new_keys_never_pass_the_limit,
    memory_values_are_encrypted_at_rest,
    memory_value_moved_to_another_row_does_not_decrypt,
    erase_wipes_every_row_of_the_subject_and_nothing_else,
    erasing_a_visitor_revokes_it,
    outbox_events_written_with_their_changes_are_pending_and_leased_once,
    settles_follow_the_lease,
    gone_disables_holds_and_resume_restores,
    list_pages_and_filters,
    purge_deletes_only_what_was_kept_long_enough,
    a_postponed_delivery_is_not_a_try_and_any_node_takes_it_later,
    idle_sessions_once_per_quiet_stretch,
    outbox_bodies_are_encrypted_at_rest,
    events_written_here_are_handed_over_leased,
);

memory_conformance!(
    ping_answers,
    create_session_starts_empty,
    begin_turn_assigns_seqs,
    begin_turn_returns_history,
    duplicate_client_message_id_writes_nothing,
    concurrent_duplicates_end_as_duplicate,
    concurrent_turns_in_one_session_start_once,
    concurrent_turns_across_sessions_all_start,
    one_failing_write_fails_alone,
    not_found_for_wrong_owner_tenant_or_id,
    in_progress_while_streaming,
    closed_session_refuses_turns,
    human_session_stores_only_the_user_message,
    checkpoint_renews_lease_and_saves_text,
    finish_ends_streaming_once,
    reap_expired_leases_interrupts,
    reap_node_leases_interrupts_only_that_node,
    list_messages_order_limit_before_seq,
    messages_after_oldest_first_from_a_cursor,
    list_sessions_keyset_paging_with_ties,
    delete_session_removes_messages,
    cap_on_write_keeps_the_newest_messages_and_counts,
    cap_never_deletes_what_was_just_written,
    history_leaves_out_messages_past_retention,
    consecutive_turns_see_what_was_written,
    sweep_deletes_what_is_older_than_the_days,
    tenants_crud,
    link_moves_the_visitors_sessions_once,
    linked_visitors_since_a_time_oldest_first,
    concurrent_links_of_one_visitor_link_once,
    conversation_ids_are_kept_per_session_and_key,
    admin_list_filters_sorts_and_pages,
    close_session_closes_and_refuses_turns,
    runtime_settings_round_trip,
    takeover_writes_status_note_and_seq_at_once,
    takeover_refusals,
    agent_messages_only_while_human,
    agent_messages_and_notes_keep_the_cap,
    takeover_and_turns_race_without_seq_gaps,
    concurrent_reservations_never_overshoot,
    subject_budgets_are_per_subject,
    budgets_are_checked_last,
    finished_turns_add_their_usage_once,
    memory_put_get_list_delete_and_clear,
    memory_key_limit_allows_overwrites,
    memory_is_per_tenant_and_subject,
    concurrent_writes_of_one_key_end_with_one_value,
    concurrent_new_keys_never_pass_the_limit,
    erase_wipes_every_row_of_the_subject_and_nothing_else,
    erasing_a_visitor_revokes_it,
    outbox_events_written_with_their_changes_are_pending_and_leased_once,
    settles_follow_the_lease,
    gone_disables_holds_and_resume_restores,
    list_pages_and_filters,
    purge_deletes_only_what_was_kept_long_enough,
    a_postponed_delivery_is_not_a_try_and_any_node_takes_it_later,
    idle_sessions_once_per_quiet_stretch,
);
