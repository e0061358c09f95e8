//! A killed process (SIGKILL mid-stream) restarted on the same data: the
//! streaming answer becomes `interrupted` with its last checkpoint (SPEC §11.2).

mod common;

use common::scenarios;

#[tokio::test]
async fn crash_mid_stream_leaves_an_interrupted_partial() {
    scenarios::crash_mid_stream_leaves_interrupted_partial(None).await;
}
