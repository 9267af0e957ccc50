//! Reservations one change of a binding's targets makes in tenancy, held
//! until the change is recorded. A change reserves for every target first
//! and records only once all are admitted; when reserving or recording
//! fails, every reservation made is given back ([`Reservations::settle`]),
//! so nothing of a refused change stays reserved until it expires.

use std::collections::BTreeMap;

use kernel::Result;
use uuid::Uuid;

use super::Admission;
use super::plan::Quota;

/// A reservation made for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The target's cluster.
    pub cluster: String,
    /// Tenancy's id of the reservation.
    pub id: Uuid,
    /// What it reserves.
    pub amounts: BTreeMap<String, String>,
}

/// The reservations of one change, released unless they are kept.
///
/// Releasing awaits tenancy, so it cannot happen on drop: the work ends in
/// [`Self::settle`], [`Self::keep`] or [`Self::release`]. Dropped with
/// reservations in hand (the work was cancelled midway), it says so, and
/// they expire in tenancy.
pub struct Reservations<'a> {
    admission: &'a dyn Admission,
    made: Vec<Reservation>,
}

impl<'a> Reservations<'a> {
    /// None yet, made through `admission`.
    pub fn new(admission: &'a dyn Admission) -> Self {
        Self {
            admission,
            made: Vec::new(),
        }
    }

    /// Reserves `quota`.
    ///
    /// # Errors
    /// As [`Admission::reserve`]: ResourceExhausted when refused.
    pub async fn reserve(&mut self, quota: &Quota) -> Result<()> {
        let id = self
            .admission
            .reserve(quota.partition_id, &quota.amounts, &quota.key)
            .await?;
        self.made(quota, id);
        Ok(())
    }

    /// Reserves `quota` for a failover, which may draw on the DR reserve.
    ///
    /// # Errors
    /// As [`Admission::reserve_for_failover`].
    pub async fn reserve_for_failover(&mut self, quota: &Quota) -> Result<()> {
        let id = self
            .admission
            .reserve_for_failover(quota.partition_id, &quota.amounts, &quota.key)
            .await?;
        self.made(quota, id);
        Ok(())
    }

    fn made(&mut self, quota: &Quota, id: Uuid) {
        self.made.push(Reservation {
            cluster: quota.cluster.clone(),
            id,
            amounts: quota.amounts.clone(),
        });
    }

    /// What is reserved so far.
    pub fn held(&self) -> &[Reservation] {
        &self.made
    }

    /// Keeps the reservations: the work that needed them is recorded (and
    /// whoever carries it out commits or releases them).
    pub fn keep(mut self) -> Vec<Reservation> {
        std::mem::take(&mut self.made)
    }

    /// Gives every reservation back. A release that fails is logged: the
    /// reservation expires in tenancy.
    pub async fn release(mut self) {
        for r in std::mem::take(&mut self.made) {
            if let Err(e) = self.admission.release(r.id).await {
                tracing::warn!(reservation = %r.id, error = %e, "reservation not released; it expires");
            }
        }
    }

    /// Ends with the work's `outcome`: kept when it succeeded, released when
    /// it failed, whichever step of it failed.
    ///
    /// # Errors
    /// The outcome's.
    pub async fn settle<T>(self, outcome: Result<T>) -> Result<T> {
        match outcome {
            Ok(v) => {
                self.keep();
                Ok(v)
            }
            Err(e) => {
                self.release().await;
                Err(e)
            }
        }
    }
}

impl Drop for Reservations<'_> {
    fn drop(&mut self) {
        if !self.made.is_empty() {
            let ids: Vec<String> = self.made.iter().map(|r| r.id.to_string()).collect();
            tracing::warn!(
                reservations = %ids.join(", "),
                "work cancelled with reservations neither recorded nor released; they expire"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;

    use kernel::Error;

    use super::*;

    /// Admits every key but `refused`; remembers what is held and how each reservation was drawn.
    #[derive(Default)]
    struct Tenancy {
        refused: &'static str,
        held: Mutex<BTreeMap<Uuid, (String, bool)>>,
    }

    impl Tenancy {
        fn take(&self, key: &str, failover: bool) -> Result<Uuid> {
            if key == self.refused {
                return Err(Error::ResourceExhausted(format!("{key}: no room")));
            }
            let id = Uuid::now_v7();
            self.held.lock().unwrap().insert(id, (key.to_string(), failover));
            Ok(id)
        }

        fn keys(&self) -> Vec<(String, bool)> {
            self.held.lock().unwrap().values().cloned().collect()
        }
    }

    impl Admission for Tenancy {
        fn reserve<'a>(
            &'a self,
            _partition: Uuid,
            _amounts: &'a BTreeMap<String, String>,
            key: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<Uuid>> + Send + 'a>> {
            Box::pin(async move { self.take(key, false) })
        }
        fn reserve_for_failover<'a>(
            &'a self,
            _partition: Uuid,
            _amounts: &'a BTreeMap<String, String>,
            key: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<Uuid>> + Send + 'a>> {
            Box::pin(async move { self.take(key, true) })
        }
        fn commit(&self, _r: Uuid) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
            Box::pin(async { Ok(()) })
        }
        fn release(&self, r: Uuid) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
            Box::pin(async move {
                self.held.lock().unwrap().remove(&r);
                Ok(())
            })
        }
    }

    fn quota(cluster: &str) -> Quota {
        Quota {
            cluster: cluster.into(),
            partition_id: Uuid::nil(),
            amounts: BTreeMap::from([("pods".to_string(), "1".to_string())]),
            key: format!("k:{cluster}"),
        }
    }

    /// Reserves for `clusters` in order, then fails when `record` does.
    async fn reserve_then_record(r: &mut Reservations<'_>, clusters: &[&str], record: Result<()>) -> Result<()> {
        for c in clusters {
            r.reserve(&quota(c)).await?;
        }
        record
    }

    #[tokio::test]
    async fn every_reservation_is_released_whichever_step_fails_and_kept_when_none_does() {
        let cases: [(&str, &'static str, Result<()>, Vec<&str>); 3] = [
            ("recorded", "", Ok(()), vec!["k:a", "k:b"]),
            ("refused midway", "k:b", Ok(()), vec![]),
            (
                "recording fails",
                "",
                Err(Error::Conflict("changed meanwhile".into())),
                vec![],
            ),
        ];
        for (case, refused, record, left) in cases {
            let tenancy = Tenancy {
                refused,
                ..Default::default()
            };
            let mut r = Reservations::new(&tenancy);
            let outcome = reserve_then_record(&mut r, &["a", "b"], record).await;
            let failed = outcome.is_err();
            assert_eq!(
                r.settle(outcome).await.is_err(),
                failed,
                "{case}: the outcome is passed on"
            );
            let held: Vec<String> = tenancy.keys().into_iter().map(|(k, _)| k).collect();
            assert_eq!(held, left, "{case}");
        }
    }

    #[tokio::test]
    async fn kept_reservations_are_handed_over_with_what_they_reserve_and_how() {
        let tenancy = Tenancy::default();
        let mut r = Reservations::new(&tenancy);
        r.reserve(&quota("a")).await.unwrap();
        r.reserve_for_failover(&quota("b")).await.unwrap();
        assert_eq!(r.held().len(), 2);
        let kept = r.keep();
        assert_eq!(kept.iter().map(|k| k.cluster.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(kept[0].amounts, quota("a").amounts);
        let mut drawn = tenancy.keys();
        drawn.sort();
        assert_eq!(
            drawn,
            [("k:a".to_string(), false), ("k:b".to_string(), true)],
            "a failover draws on the DR reserve"
        );
    }
}
