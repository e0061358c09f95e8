//! Cases about the audit log: concurrent appends form one unbroken chain in
//! order, pages read it back both ways, and an edit made in the database
//! behind the store's back is found where it was made.

use super::*;
use crate::common::Harness;
use switchboard_core::audit::{verify, AuditEntry, NewAuditEntry, VerifyError, GENESIS};

const KEY: &[u8] = b"audit-key-for-the-conformance-suite";

fn action(i: usize, tenant: &str) -> NewAuditEntry {
    NewAuditEntry {
        at: at(i as i64),
        actor: "operator".into(),
        actor_name: "operator".into(),
        tenant_id: Some(tenant.into()),
        action: "tenant.kill_switch".into(),
        target: tenant.into(),
        detail: format!("{{\"enabled\":{},\"n\":{i}}}", i.is_multiple_of(2)),
    }
}

async fn whole_chain(store: &Arc<dyn Store>) -> Vec<AuditEntry> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |e: &AuditEntry| e.seq);
        let page = store.audit_after(after, 7).await.unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

fn check(chain: &[AuditEntry]) -> Result<(i64, String), i64> {
    verify(chain, (0, GENESIS.into()), |kid| (kid == "k1").then_some(KEY)).map_err(|e| match e {
        VerifyError::Broken(b) => b.seq,
        VerifyError::Seal(e) => panic!("cannot seal: {e}"),
    })
}

pub async fn audit_appends_form_one_chain_and_edits_are_found(h: &mut Harness) {
    let tasks: Vec<_> = (0..20usize)
        .map(|i| {
            let store = h.store.clone();
            let tenant = if i.is_multiple_of(3) { "other" } else { TENANT };
            tokio::spawn(async move { store.append_audit(&action(i, tenant), "k1", KEY).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let chain = whole_chain(&h.store).await;
    assert_eq!(chain.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
    assert_eq!(check(&chain).map(|(seq, _)| seq), Ok(20));

    // Newest first, a tenant's own, in pages.
    let page = h.store.audit_page(Some(TENANT), i64::MAX, 5).await.unwrap();
    assert_eq!(page.len(), 5);
    assert!(page.windows(2).all(|w| w[0].seq > w[1].seq));
    assert!(page.iter().all(|e| e.entry.tenant_id.as_deref() == Some(TENANT)));
    let rest = h.store.audit_page(Some(TENANT), page[4].seq, 100).await.unwrap();
    assert_eq!(page.len() + rest.len(), 13, "13 of the 20 entries are acme's");
    assert_eq!(h.store.audit_page(None, i64::MAX, 100).await.unwrap().len(), 20);

    // An edit in the database is found at the entry it touched.
    h.exec("UPDATE audit_log SET detail = '{\"enabled\":false}' WHERE seq = 8").await;
    assert_eq!(check(&whole_chain(&h.store).await), Err(8));
    h.exec("DELETE FROM audit_log WHERE seq = 8").await;
    assert_eq!(check(&whole_chain(&h.store).await), Err(9));
}
