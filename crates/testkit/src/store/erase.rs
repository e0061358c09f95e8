//! Erasing a subject (SPEC §18) in the memory store: the same rows go as
//! in the SQL backends' one transaction, under the store's one lock.

use super::{ms, State};
use switchboard_core::store::{EraseSubject, Erased, VisitorLink};
use switchboard_core::Subject;
use uuid::Uuid;

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl State {
    pub(super) fn erase_subject(&mut self, erase: &EraseSubject) -> Erased {
        let (tenant, subject) = (&erase.tenant_id, &erase.subject);
        let owned: Vec<Uuid> = self
            .sessions
            .values()
            .filter(|s| &s.tenant_id == tenant && &s.owner == subject)
            .map(|s| s.id)
            .collect();
        let messages = owned.iter().map(|id| self.messages.get(id).map_or(0, |m| m.len())).sum();
        for id in &owned {
            self.remove_session(*id);
        }
        self.forget_events_of(&owned);
        self.usage_events.retain(|(session, _)| !owned.contains(session));
        self.subject_daily.retain(|(t, s, _), _| !(t == tenant && s == subject));
        self.reservations.retain(|_, r| !(&r.tenant_id == tenant && &r.subject == subject));
        let memory = self.clear_memory(tenant, subject);
        let mut links = 0;
        for link in self.links.values_mut() {
            let names = &link.user == subject || &link.visitor == subject;
            if &link.tenant_id == tenant && !link.user.is_empty() && names {
                link.user.clear();
                links += 1;
            }
        }
        if matches!(Subject::parse(subject), Some(Subject::Visitor(_))) {
            let revoked = VisitorLink {
                tenant_id: tenant.clone(),
                visitor: subject.clone(),
                user: String::new(),
                linked_at: ms(erase.now),
            };
            self.links.entry((tenant.clone(), subject.clone())).or_insert(revoked);
        }
        Erased { sessions: count(owned.len()), messages: count(messages), memory, links }
    }
}
