//! The bus conformance suite: every case runs against the in-process backend
//! (`local::<case>`), Redis (`redis::<case>`) and NATS (`nats::<case>`), so the
//! three keep one behaviour. Cases that need two nodes say why they skip the
//! in-process bus.

mod cases;
mod common;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let mut harness = crate::common::Harness::local();
                    crate::cases::$case(&mut harness).await;
                }
            )*
        }

        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(mut harness) = crate::common::Harness::redis() else { return };
                    crate::cases::$case(&mut harness).await;
                }
            )*
        }

        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(mut harness) = crate::common::Harness::nats() else { return };
                    crate::cases::$case(&mut harness).await;
                }
            )*
        }
    };
}

conformance!(
    subscribers_get_their_sessions_events_in_order,
    other_sessions_events_are_not_delivered,
    two_nodes_see_each_others_events_once_in_order,
    a_node_does_not_receive_its_own_events_twice,
    prefixes_isolate,
    notices_reach_every_node_including_the_sender_once,
    an_announcement_reaches_every_node,
    a_session_without_subscribers_leaves_no_local_channel,
    events_round_trip_intact,
    a_node_rides_out_a_lost_connection,
    decides_like_the_local_limiter,
    a_refused_request_counts_nowhere,
    random_sequences_decide_like_the_local_limiter,
    two_instances_share_counts,
    concurrent_checks_admit_exactly_the_limit,
    counter_keys_expire,
);
