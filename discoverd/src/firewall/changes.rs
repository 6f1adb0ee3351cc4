//! Incremental changes: an introspection's start and end, sent as the
//! MACs that change, or as a full sync when the plan changes (deny mode
//! opening for unknown MACs at the first running introspection, closing
//! after the last).

use std::collections::HashSet;
use std::future::Future;

use common::MacAddr;
use common::protocol::{ErrorCode, ReplyBody, RequestBody};

use super::{Firewall, FirewallError, Plan, refusal};

impl Firewall {
    /// Sends an incremental change; falls back to a full sync when the
    /// helper has no state to change (restarted, never synced).
    async fn incremental(&self, body: RequestBody) -> Result<(), FirewallError> {
        if self.desired().status.stale {
            // A full sync carries this change too.
            return self.send_full().await.map(drop);
        }
        match self.request(body).await {
            Ok(ReplyBody::Applied(s)) => {
                self.desired().status.mac_count = s.mac_count;
                Ok(())
            }
            Ok(ReplyBody::Error(e)) if e.code == ErrorCode::NotSynced => self.send_full().await.map(drop),
            Ok(other) => {
                let e = refusal(other);
                self.failed(&e);
                Err(e)
            }
            Err(e) => {
                self.failed(&e);
                Err(e)
            }
        }
    }

    fn parse_macs(macs: &[String]) -> Vec<MacAddr> {
        macs.iter()
            .filter_map(|m| MacAddr::parse_unicast(m).ok())
            .collect()
    }

    /// A node came under introspection (`macs` may be empty: a node
    /// enrolled without ports): let its DHCP through. `introspections`
    /// reads how many run now, this one included (`None` when it cannot be
    /// read: at least this one is assumed). Deny mode opens for unknown
    /// MACs with the first: a full sync then, an incremental change
    /// otherwise.
    pub async fn introspection_started(
        &self,
        macs: &[String],
        introspections: impl Future<Output = Option<u64>>,
    ) -> Result<(), FirewallError> {
        if !self.inner.settings.enabled {
            return Ok(());
        }
        let _gate = self.inner.gate.lock().await;
        let count = introspections.await;
        let (before, now) = {
            let mut d = self.desired();
            d.active.extend(macs.iter().cloned());
            let before = d.plan;
            let count = count.unwrap_or(d.introspections.max(1));
            (before, d.replan(&self.inner.settings, count))
        };
        let parsed = Self::parse_macs(macs);
        let body = match now {
            _ if before != Some(now) => return self.send_full().await.map(drop),
            _ if parsed.is_empty() => return Ok(()),
            Plan::Deny => RequestBody::Remove { macs: parsed },
            Plan::Allow => RequestBody::Add { macs: parsed },
            Plan::Closed => return Ok(()),
        };
        self.incremental(body).await
    }

    /// A node's introspection ended: filter its DHCP again (deny mode
    /// only for MACs Ironic knows, as a full sync would compute).
    /// `introspections` reads how many still run (`None` when it cannot be
    /// read: the plan stays, the next periodic sync corrects it). Deny
    /// mode closes after the last: a full sync then.
    pub async fn introspection_finished(
        &self,
        macs: &[String],
        introspections: impl Future<Output = Option<u64>>,
    ) -> Result<(), FirewallError> {
        if !self.inner.settings.enabled {
            return Ok(());
        }
        let _gate = self.inner.gate.lock().await;
        let count = introspections.await;
        let (before, now, known) = {
            let mut d = self.desired();
            for m in macs {
                d.active.remove(m);
            }
            let known: Option<HashSet<MacAddr>> = d
                .ironic
                .as_ref()
                .map(|i| Self::parse_macs(i).into_iter().collect());
            let before = d.plan;
            let count = count.unwrap_or(d.introspections);
            (before, d.replan(&self.inner.settings, count), known)
        };
        let parsed = Self::parse_macs(macs);
        let body = match now {
            _ if before != Some(now) => return self.send_full().await.map(drop),
            _ if parsed.is_empty() => return Ok(()),
            Plan::Deny => RequestBody::Add {
                macs: parsed
                    .into_iter()
                    .filter(|m| known.as_ref().is_some_and(|k| k.contains(m)))
                    .collect(),
            },
            Plan::Allow => RequestBody::Remove { macs: parsed },
            Plan::Closed => return Ok(()),
        };
        self.incremental(body).await
    }
}
