//! How a deploying release moves on: one pure transition per phase,
//! `(release as stored, what was observed) -> (effects, then)`, with no
//! database, no federation call and no clock of its own. The driver
//! ([`crate::driver`]) observes what a transition asks to [`Look`] at,
//! performs the [`Effect`]s in order and schedules the release as [`Then`]
//! says.
//!
//! A transition that needs to see something first returns
//! [`Then::Look`] without effects; the driver looks and asks again with what
//! it saw in [`Observed`]. What was seen holds until effects are performed:
//! after an apply everything is looked at again. When federation refuses an
//! apply the driver asks again with the refusal, and the same transition
//! says what the refusal means (the release fails, or returns to the
//! replaced one).
//!
//! The phases (see [`crate::driver`] for the whole story): `rollout` (the
//! waves, after adopting an unslotted predecessor into the first slot; a
//! gray release's waves by cluster or partition), `traffic` (a slotted
//! strategy's steps), `waiting` (for a person), `finishing` (the new slot
//! alone), `aborting` (back on the replaced release), `done`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::release::{GrayWave, Release, View, gray_waves, runs_in_slot, traffic_at};
use crate::strategy::{GrayPause, Strategy};
use crate::traffic;

/// Where a deploying release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The waves go out (beside the old slot for a slotted release).
    Rollout,
    /// A slotted strategy's step is applied and gated.
    Traffic,
    /// Waits for a person to confirm, resume, promote or abort.
    Waiting,
    /// Only the new slot remains.
    Finishing,
    /// Back on the replaced release.
    Aborting,
    /// Over.
    Done,
}

impl Phase {
    /// The phase stored as `phase`; `None` for a word no driver wrote.
    pub fn parse(phase: &str) -> Option<Self> {
        Some(match phase {
            "rollout" => Self::Rollout,
            "traffic" => Self::Traffic,
            "waiting" => Self::Waiting,
            "finishing" => Self::Finishing,
            "aborting" => Self::Aborting,
            "done" => Self::Done,
            _ => return None,
        })
    }

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollout => "rollout",
            Self::Traffic => "traffic",
            Self::Waiting => "waiting",
            Self::Finishing => "finishing",
            Self::Aborting => "aborting",
            Self::Done => "done",
        }
    }
}

/// What a transition needs to see before it can decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// Whether each of these services' bindings is Healthy (in this order;
    /// the first that is not answers).
    Health(Vec<String>),
    /// Whether every target in `clusters` of these services' bindings is Healthy.
    HealthIn {
        /// The services.
        services: Vec<String>,
        /// The clusters of one gray wave.
        clusters: Vec<String>,
    },
    /// Where these services' bindings run now (a gray release's waves).
    Placement(Vec<String>),
}

/// What the driver found when it looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Everything looked at is Healthy.
    Healthy,
    /// Not yet: why.
    Waiting(String),
    /// A binding disappeared: which.
    Gone(String),
    /// Where the bindings run: (cluster, partition id), each cluster once.
    Placed(Vec<(String, String)>),
}

/// What the driver has seen during one tick of a release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    seen: Vec<(Look, Found)>,
    refused: Option<String>,
}

impl Observed {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `found` for `look`.
    #[must_use]
    pub fn saw(mut self, look: Look, found: Found) -> Self {
        self.seen.push((look, found));
        self
    }

    /// With federation's refusal of the apply the transition asked for.
    #[must_use]
    pub fn refused(mut self, why: impl Into<String>) -> Self {
        self.refused = Some(why.into());
        self
    }

    fn found(&self, look: &Look) -> Option<&Found> {
        self.seen.iter().find(|(l, _)| l == look).map(|(_, f)| f)
    }
}

/// A change of the stored release a transition makes (conditional on the
/// phase and step it read, so an action that moved the release meanwhile wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The current wave's bindings are applied (`applied_wave = wave`).
    WaveApplied {
        /// What the release waits for.
        message: String,
    },
    /// The current wave is Healthy: the next one (`wave + 1`).
    WaveHealthy,
    /// The objects of `key` (`adopt`, `handed-over`, `traffic-<n>`,
    /// `finishing`, `aborting`) are applied, once.
    Applied {
        /// What was applied.
        key: String,
        /// The percentage of requests the new version now serves, if that changed.
        traffic: Option<i32>,
        /// What the release waits for, if that changed.
        message: Option<String>,
    },
    /// A gray wave is applied (`gray-<n>`); its deadline starts now.
    WaveOut {
        /// `gray-<n>`.
        key: String,
        /// What the release waits for.
        message: String,
    },
    /// The current step holds `seconds` from now.
    Hold {
        /// How long.
        seconds: u32,
        /// What it holds for.
        message: String,
    },
    /// A gray release's waves, fixed once.
    Waves {
        /// In order.
        waves: Vec<GrayWave>,
        /// Which they are.
        message: String,
    },
}

impl Record {
    /// Writes the change into `release` as the database does (`now`: the
    /// database's clock), so a transition asked again in the same tick sees it.
    pub fn apply_to(&self, release: &mut Release, now: DateTime<Utc>) {
        match self {
            Self::WaveApplied { message } => {
                release.applied_wave = release.wave;
                release.message.clone_from(message);
            }
            Self::WaveHealthy => release.wave += 1,
            Self::Applied { key, traffic, message } => {
                release.applied.clone_from(key);
                if let Some(t) = traffic {
                    release.traffic = *t;
                }
                if let Some(m) = message {
                    release.message.clone_from(m);
                }
            }
            Self::WaveOut { key, message } => {
                release.applied.clone_from(key);
                release.message.clone_from(message);
                release.phase_started_at = Some(now);
                release.hold_until = None;
            }
            Self::Hold { seconds, message } => {
                release.hold_until = Some(now + chrono::Duration::seconds(i64::from(*seconds)));
                release.message.clone_from(message);
            }
            Self::Waves { waves, message } => {
                release.gray_waves = Some(serde_json::json!(waves));
                release.message.clone_from(message);
            }
        }
    }
}

/// What the driver does for a transition, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The replaced (unslotted) release's objects of these services are
    /// applied adopted into the first slot: its pods roll to carry the slot
    /// label while its Service still selects them.
    Adopt(Vec<String>),
    /// These services' bindings get `view` of the release, the clusters in
    /// `hold` keeping what they run; a service without objects in the view
    /// loses its binding. The bindings are written down with the next record.
    Apply {
        /// The services.
        services: Vec<String>,
        /// Which objects.
        view: View,
        /// Clusters that keep what they run (a gray release's later waves).
        hold: Vec<String>,
    },
    /// Writes a change of the release down.
    Record(Record),
    /// Moves the release to `phase` at `step` (unless something else moved it first).
    Enter {
        /// The phase.
        phase: Phase,
        /// Its step.
        step: i32,
        /// Why, or what it waits for.
        message: String,
    },
    /// Returns to the replaced release (phase `aborting`).
    Abort(String),
    /// The release failed, and its application with it.
    Fail(String),
    /// The release succeeded: the ones before it are superseded, and the
    /// bindings of services it no longer has are deleted.
    Succeed {
        /// Services with a binding that the release does not have.
        unbind: Vec<String>,
    },
    /// Every cluster runs the replaced release again: the release is aborted.
    Aborted {
        /// Whether the replaced release now runs adopted in the first slot
        /// (an unslotted release a slotted one returned to).
        adopted: bool,
    },
}

/// When the release is looked at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Look at this and ask again, now.
    Look(Look),
    /// Ask again now (the state moved and there is more to do in this tick).
    Again,
    /// After the poll interval.
    Poll,
    /// At once, on a fresh tick (the next wave or phase); after a move that
    /// lost to something else, after the poll interval.
    Next,
    /// Only when someone acts on it (it waits for a person); after a move
    /// that lost to something else, after the poll interval.
    Idle,
    /// Never: it is over.
    Done,
}

/// Effects and what then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Performed in order; the first refused apply stops them.
    pub effects: Vec<Effect>,
    /// When to look again.
    pub then: Then,
}

impl Transition {
    fn new(effects: Vec<Effect>, then: Then) -> Self {
        Self { effects, then }
    }

    fn look(look: Look) -> Self {
        Self::new(Vec::new(), Then::Look(look))
    }

    fn poll() -> Self {
        Self::new(Vec::new(), Then::Poll)
    }

    fn fail(message: impl Into<String>) -> Self {
        Self::new(vec![Effect::Fail(message.into())], Then::Done)
    }

    fn abort(message: impl Into<String>) -> Self {
        Self::new(vec![Effect::Abort(message.into())], Then::Next)
    }

    fn enter(phase: Phase, step: i32, message: impl Into<String>) -> Self {
        let then = if phase == Phase::Waiting {
            Then::Idle
        } else {
            Then::Next
        };
        Self::new(
            vec![Effect::Enter {
                phase,
                step,
                message: message.into(),
            }],
            then,
        )
    }

    fn apply(view: View, services: Vec<String>, record: Record) -> Self {
        Self::new(
            vec![
                Effect::Apply {
                    services,
                    view,
                    hold: Vec::new(),
                },
                Effect::Record(record),
            ],
            Then::Poll,
        )
    }
}

/// What the driver knows of a release at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Moment<'a> {
    /// The release, as stored (with the records of this tick written in).
    pub release: &'a Release,
    /// The release it replaces, if any.
    pub old: Option<&'a Release>,
    /// The application's services that have a binding now.
    pub bound: &'a [String],
    /// Now.
    pub now: DateTime<Utc>,
    /// How long a wave or a phase may take to be Healthy.
    pub deadline: Duration,
}

impl Moment<'_> {
    fn overdue_by(&self, since: Option<DateTime<Utc>>, deadline: Duration) -> bool {
        since.is_some_and(|s| self.now - s > chrono::Duration::from_std(deadline).unwrap_or_default())
    }

    fn overdue(&self, since: Option<DateTime<Utc>>) -> bool {
        self.overdue_by(since, self.deadline)
    }

    /// Every service of the release.
    fn services(&self) -> Vec<String> {
        self.release
            .objects
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The services whose workloads cannot run in two slots: they roll in
    /// place under a slotted strategy.
    fn rolled(&self) -> Vec<String> {
        self.release
            .objects
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, o)| !traffic::slottable(o.as_array().map(Vec::as_slice).unwrap_or_default()))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// What a slotted release says once its waves are out.
    fn both_slots(&self) -> String {
        let rolled = self.rolled();
        if rolled.is_empty() {
            return "every service runs in both slots; moving traffic".into();
        }
        let slotted: Vec<String> = self.services().into_iter().filter(|s| !rolled.contains(s)).collect();
        format!(
            "{} in both slots; {} rolled in place (a StatefulSet or DaemonSet does not run in two slots); moving traffic",
            if slotted.is_empty() {
                "nothing runs".to_string()
            } else {
                format!(
                    "{} {}",
                    slotted.join(", "),
                    if slotted.len() == 1 { "runs" } else { "run" }
                )
            },
            rolled.join(", ")
        )
    }

    fn succeed(&self) -> Transition {
        let unbind = self
            .bound
            .iter()
            .filter(|s| self.release.objects.get(s.as_str()).is_none())
            .cloned()
            .collect();
        Transition::new(vec![Effect::Succeed { unbind }], Then::Done)
    }
}

/// Health as seen for `look`: `Err` is the transition that looks first.
fn health(seen: &Observed, look: Look) -> Result<&Found, Transition> {
    seen.found(&look).ok_or_else(|| Transition::look(look))
}

/// The next transition of the release at `m`, given what was `seen`.
pub fn step(m: &Moment, seen: &Observed) -> Transition {
    match Phase::parse(&m.release.phase) {
        Some(Phase::Rollout) => match m.old {
            Some(old) if m.release.strategy().gray() => gray(m, old, seen),
            _ => rollout(m, seen),
        },
        Some(Phase::Traffic) => traffic(m, seen),
        Some(Phase::Finishing) => finishing(m, seen),
        Some(Phase::Aborting) => aborting(m, seen),
        Some(Phase::Waiting | Phase::Done) | None => Transition::new(Vec::new(), Then::Idle),
    }
}

/// The waves of a release that is not gray (or replaces nothing): each
/// applied once, then gated Healthy; then traffic (slotted), a handover
/// (unslotted after a slot) or success.
fn rollout(m: &Moment, seen: &Observed) -> Transition {
    let r = m.release;
    if r.slot.is_some()
        && r.applied_wave < 0
        && let Some(o) = m.old.filter(|o| o.slot.is_none())
        && let Some(t) = adopt(m, o, seen)
    {
        return t;
    }
    let waves = r.waves();
    let Some(wave) = usize::try_from(r.wave).ok().and_then(|w| waves.get(w)) else {
        if r.slot.is_some() && m.old.is_some() {
            return Transition::enter(Phase::Traffic, 0, m.both_slots());
        }
        if let Some(o) = m.old.filter(|o| r.slot.is_none() && runs_in_slot(o)) {
            return hand_over(m, o, seen);
        }
        return m.succeed();
    };
    if m.overdue(r.started_at) {
        return Transition::fail(format!("not every service was Healthy within {:?}", m.deadline));
    }
    if r.applied_wave < r.wave {
        if let Some(why) = &seen.refused {
            return Transition::fail(why.clone());
        }
        return Transition::new(
            vec![
                Effect::Apply {
                    services: wave.clone(),
                    view: View::Rollout,
                    hold: Vec::new(),
                },
                Effect::Record(Record::WaveApplied {
                    message: format!("waiting for {} to be Healthy", wave.join(", ")),
                }),
            ],
            Then::Again,
        );
    }
    match health(seen, Look::Health(wave.clone())) {
        Err(look) => look,
        Ok(Found::Healthy) => Transition::new(vec![Effect::Record(Record::WaveHealthy)], Then::Next),
        Ok(Found::Gone(why)) => Transition::fail(why.clone()),
        Ok(Found::Waiting(_) | Found::Placed(_)) => Transition::poll(),
    }
}

/// Before a slotted release first runs beside the unslotted `old`, `old`'s
/// Deployments are adopted as the first slot (renaming them would prune the
/// running pods). `None` once every adopted service is Healthy.
fn adopt(m: &Moment, old: &Release, seen: &Observed) -> Option<Transition> {
    let r = m.release;
    // A StatefulSet or DaemonSet is not adopted: it rolls in place.
    let services: Vec<String> = m
        .services()
        .into_iter()
        .filter(|s| {
            old.objects
                .get(s.as_str())
                .and_then(serde_json::Value::as_array)
                .is_some_and(|o| traffic::slottable(o))
                && m.bound.contains(s)
        })
        .collect();
    if m.overdue(r.started_at) {
        return Some(Transition::fail(format!(
            "the running version's pods did not take slot {} within {:?}",
            traffic::FIRST_SLOT,
            m.deadline
        )));
    }
    if r.applied != "adopt" {
        if let Some(why) = &seen.refused {
            return Some(Transition::fail(why.clone()));
        }
        let record = Record::Applied {
            key: "adopt".into(),
            traffic: None,
            message: Some(format!(
                "release {}'s pods take slot {}",
                old.number,
                traffic::FIRST_SLOT
            )),
        };
        return Some(Transition::new(
            vec![Effect::Adopt(services), Effect::Record(record)],
            Then::Poll,
        ));
    }
    match health(seen, Look::Health(services)) {
        Err(look) => Some(look),
        Ok(Found::Healthy) => None,
        Ok(Found::Gone(why)) => Some(Transition::fail(why.clone())),
        Ok(Found::Waiting(_) | Found::Placed(_)) => Some(Transition::poll()),
    }
}

/// An unslotted release whose every wave is Healthy beside the slot it
/// replaces: the slot goes (what the release rendered is applied), then the
/// release has succeeded.
fn hand_over(m: &Moment, old: &Release, seen: &Observed) -> Transition {
    let r = m.release;
    if r.applied != "handed-over" {
        if let Some(why) = &seen.refused {
            return Transition::fail(format!("removing release {}'s slot was refused: {why}", old.number));
        }
        let record = Record::Applied {
            key: "handed-over".into(),
            traffic: None,
            message: Some(format!("removing release {}'s slot", old.number)),
        };
        return Transition::apply(View::Final, m.services(), record);
    }
    match health(seen, Look::Health(m.services())) {
        Err(look) => look,
        Ok(Found::Healthy) => m.succeed(),
        Ok(Found::Waiting(why)) if m.overdue(r.started_at) => Transition::fail(format!(
            "not Healthy within {:?} after release {}'s slot was removed ({why})",
            m.deadline, old.number
        )),
        Ok(Found::Gone(why)) => Transition::fail(why.clone()),
        Ok(Found::Waiting(_) | Found::Placed(_)) => Transition::poll(),
    }
}

/// A slotted release's traffic step: applied once, gated Healthy (else
/// back to the replaced release), then the strategy says what comes next.
fn traffic(m: &Moment, seen: &Observed) -> Transition {
    let r = m.release;
    let strategy = r.strategy();
    let step = usize::try_from(r.step).unwrap_or_default();
    let done = "every step passed; the canary becomes the stable version";
    if let Strategy::Canary { steps, .. } = &strategy
        && step >= steps.len()
    {
        return Transition::enter(Phase::Finishing, r.step, done);
    }
    let percent = traffic_at(&strategy, step);
    let back = r.replaces.unwrap_or(0);
    let key = format!("traffic-{step}");
    if r.applied != key {
        if let Some(why) = &seen.refused {
            return Transition::abort(format!(
                "federation refused a step ({why}); returning to release {back}"
            ));
        }
        let record = Record::Applied {
            key,
            traffic: Some(percent),
            message: None,
        };
        return Transition::apply(View::Traffic(step), m.services(), record);
    }
    match health(seen, Look::Health(m.services())) {
        Err(look) => return look,
        Ok(Found::Healthy) => {}
        Ok(Found::Waiting(why)) if m.overdue(r.phase_started_at) => {
            return Transition::abort(format!(
                "not Healthy within {:?} ({why}); returning to release {back}",
                m.deadline
            ));
        }
        Ok(Found::Gone(why)) => return Transition::abort(format!("{why}; returning to release {back}")),
        Ok(Found::Waiting(_) | Found::Placed(_)) => return Transition::poll(),
    }
    let slot = r.slot.as_deref().unwrap_or_default();
    let person = |message: String| Transition::enter(Phase::Waiting, r.step, message);
    match &strategy {
        Strategy::BlueGreen => person(format!(
            "{slot} serves; confirm to remove the old slot, or abort to switch back to release {back}"
        )),
        Strategy::AB { .. } => person(format!(
            "matching requests go to {slot}; promote it, or abort to return to release {back}"
        )),
        Strategy::Shadow => person(format!(
            "requests are mirrored to {slot}; promote it, or abort to return to release {back}"
        )),
        Strategy::Canary {
            steps,
            pause_seconds,
            pause,
        } => {
            if step + 1 >= steps.len() {
                return Transition::enter(Phase::Finishing, r.step, done);
            }
            if *pause {
                return person(format!("paused at {percent}% on {slot}; resume, promote or abort"));
            }
            if *pause_seconds > 0 {
                match r.hold_until {
                    None => {
                        let hold = Record::Hold {
                            seconds: *pause_seconds,
                            message: format!("{percent}% on {slot}; holding {pause_seconds}s"),
                        };
                        return Transition::new(vec![Effect::Record(hold)], Then::Poll);
                    }
                    Some(until) if until > m.now => return Transition::poll(),
                    Some(_) => {}
                }
            }
            Transition::enter(
                Phase::Traffic,
                r.step + 1,
                format!("{percent}% on {slot} was Healthy; next step"),
            )
        }
        Strategy::Recreate | Strategy::Rolling { .. } | Strategy::Gray { .. } => {
            Transition::fail("an unslotted release has no traffic phase")
        }
    }
}

/// One tick of a gray release replacing `old`: fix the waves, apply the
/// current one (later waves held), gate it within the deadline, pause, go on.
fn gray(m: &Moment, old: &Release, seen: &Observed) -> Transition {
    let r = m.release;
    let Strategy::Gray {
        by,
        order,
        pause,
        deadline_seconds,
    } = r.strategy()
    else {
        return Transition::fail("not a gray release");
    };
    let services: Vec<String> = r.waves().into_iter().flatten().collect();
    let Some(waves) = r.gray_waves() else {
        let mut known = services.clone();
        known.extend(old.objects.as_object().into_iter().flat_map(|o| o.keys().cloned()));
        let targets = match health(seen, Look::Placement(known)) {
            Err(look) => return look,
            Ok(Found::Placed(targets)) => targets,
            Ok(other) => return Transition::fail(format!("where the application runs is unknown: {other:?}")),
        };
        return match gray_waves(by, &order, &r.placement, targets) {
            Ok(w) if w.is_empty() => {
                Transition::fail("the application runs in no cluster; nothing to roll out wave by wave")
            }
            Ok(waves) => {
                let names: Vec<&str> = waves.iter().map(|w| w.name.as_str()).collect();
                let message = format!("{} waves: {}", waves.len(), names.join(", "));
                Transition::new(vec![Effect::Record(Record::Waves { waves, message })], Then::Next)
            }
            Err(why) => Transition::fail(why),
        };
    };
    let k = usize::try_from(r.step).unwrap_or_default();
    let Some(wave) = waves.get(k) else {
        return m.succeed();
    };
    let n = waves.len();
    let named = format!("wave {} of {n} ({})", k + 1, wave.name);
    let later: Vec<String> = waves[k + 1..]
        .iter()
        .flat_map(|w| w.clusters.iter().cloned())
        .filter(|c| !wave.clusters.contains(c))
        .collect();
    let key = format!("gray-{k}");
    if r.applied != key {
        if let Some(why) = &seen.refused {
            return Transition::fail(format!("{named}: {why}"));
        }
        let message = format!("{named}: waiting for {} to be Available", wave.clusters.join(", "));
        return Transition::new(
            vec![
                Effect::Apply {
                    services,
                    view: View::Rollout,
                    hold: later,
                },
                Effect::Record(Record::WaveOut { key, message }),
            ],
            Then::Poll,
        );
    }
    let deadline = deadline_seconds.map_or(m.deadline, |s| Duration::from_secs(u64::from(s)));
    let look = Look::HealthIn {
        services,
        clusters: wave.clusters.clone(),
    };
    match health(seen, look) {
        Err(look) => return look,
        Ok(Found::Healthy) => {}
        Ok(Found::Waiting(why)) if m.overdue_by(r.phase_started_at, deadline) => {
            let kept = if later.is_empty() {
                String::new()
            } else {
                format!("; {} keep release {}", later.join(", "), old.number)
            };
            return Transition::fail(format!("{named} was not Available within {deadline:?} ({why}){kept}"));
        }
        Ok(Found::Gone(why)) => return Transition::fail(why.clone()),
        Ok(Found::Waiting(_) | Found::Placed(_)) => return Transition::poll(),
    }
    let Some(next) = waves.get(k + 1) else {
        return m.succeed();
    };
    match pause {
        GrayPause::Manual => {
            return Transition::enter(
                Phase::Waiting,
                r.step,
                format!(
                    "{named} runs release {}; promote to go on to {}, or abort to return to release {}",
                    r.number, next.name, old.number
                ),
            );
        }
        GrayPause::Seconds(seconds) if seconds > 0 => match r.hold_until {
            None => {
                let hold = Record::Hold {
                    seconds,
                    message: format!("{named} is Available; holding {seconds}s before {}", next.name),
                };
                return Transition::new(vec![Effect::Record(hold)], Then::Poll);
            }
            Some(until) if until > m.now => return Transition::poll(),
            Some(_) => {}
        },
        GrayPause::Seconds(_) => {}
    }
    Transition::enter(
        Phase::Rollout,
        r.step + 1,
        format!("{named} was Available; next {}", next.name),
    )
}

/// The new slot alone, serving everything; once Healthy the release has succeeded.
fn finishing(m: &Moment, seen: &Observed) -> Transition {
    let r = m.release;
    if r.applied != "finishing" {
        if let Some(why) = &seen.refused {
            return Transition::abort(format!(
                "federation refused a step ({why}); returning to release {}",
                r.replaces.unwrap_or(0)
            ));
        }
        let record = Record::Applied {
            key: "finishing".into(),
            traffic: Some(100),
            message: None,
        };
        return Transition::apply(View::Final, m.services(), record);
    }
    match health(seen, Look::Health(m.services())) {
        Err(look) => look,
        Ok(Found::Healthy) => m.succeed(),
        Ok(Found::Waiting(why)) if m.overdue(r.phase_started_at) => Transition::fail(format!(
            "not Healthy within {:?} after the old slot was removed ({why})",
            m.deadline
        )),
        Ok(Found::Gone(why)) => Transition::fail(why.clone()),
        Ok(Found::Waiting(_) | Found::Placed(_)) => Transition::poll(),
    }
}

/// Back on the replaced release at once, whatever state the new version is
/// in (a gray release: every cluster gets the replaced release's objects,
/// unheld); aborted once every cluster has it.
fn aborting(m: &Moment, seen: &Observed) -> Transition {
    let r = m.release;
    let Some(old) = m.old else {
        return Transition::fail("aborted, but there is no earlier release to return to");
    };
    // Aborted before any of the new version was applied: the running
    // version is as it was (at most its pods were taking their slot, its
    // Service selecting them either way), so nothing is switched back.
    let untouched = r.applied_wave < 0 && !r.applied.starts_with("gray");
    if r.applied != "aborting" && !untouched {
        if let Some(why) = &seen.refused {
            return Transition::fail(format!("returning to release {} was refused: {why}", old.number));
        }
        let record = Record::Applied {
            key: "aborting".into(),
            traffic: Some(0),
            message: None,
        };
        return Transition::apply(View::Back, m.services(), record);
    }
    let services: Vec<String> = m
        .services()
        .into_iter()
        .filter(|s| old.objects.get(s.as_str()).is_some())
        .collect();
    match health(seen, Look::Health(services)) {
        Err(look) => look,
        Ok(Found::Healthy) => Transition::new(
            vec![Effect::Aborted {
                adopted: r.slot.is_some() && !untouched,
            }],
            Then::Done,
        ),
        Ok(Found::Waiting(why)) if m.overdue(r.phase_started_at) => Transition::fail(format!(
            "returning to release {} did not settle within {:?} ({why})",
            old.number, m.deadline
        )),
        Ok(Found::Gone(why)) => Transition::fail(why.clone()),
        Ok(Found::Waiting(_) | Found::Placed(_)) => Transition::poll(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(600);

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    fn web() -> Vec<String> {
        names(&["web"])
    }

    /// A release of `strategy` in `slot` that replaces release 1 (`old`), in
    /// `phase` at `step` with `applied` applied (`applied_wave` 0: its wave
    /// is out).
    fn replacing(strategy: Value, slot: Option<&str>, phase: &str, step: i32, applied: &str) -> Release {
        let mut r = Release::test(2, slot, strategy, "web:2");
        r.replaces = Some(1);
        r.phase = phase.into();
        r.step = step;
        r.applied = applied.into();
        r.applied_wave = 0;
        r.wave = 1;
        r
    }

    fn rolling_old() -> Release {
        Release::test(1, None, json!({"type": "rolling"}), "web:1")
    }

    fn blue_old() -> Release {
        Release::test(1, Some("blue"), json!({"type": "blue-green"}), "web:1")
    }

    fn ago(now: DateTime<Utc>, seconds: i64) -> Option<DateTime<Utc>> {
        Some(now - chrono::Duration::seconds(seconds))
    }

    fn healthy(look: Look) -> Observed {
        Observed::new().saw(look, Found::Healthy)
    }

    fn waiting(look: Look) -> Observed {
        Observed::new().saw(look, Found::Waiting("web: 0/1 ready".into()))
    }

    fn gone(look: Look) -> Observed {
        Observed::new().saw(look, Found::Gone("web: its binding disappeared".into()))
    }

    fn apply(view: View, record: Record) -> Transition {
        Transition::apply(view, web(), record)
    }

    fn applied(key: &str, traffic: Option<i32>, message: Option<&str>) -> Record {
        Record::Applied {
            key: key.into(),
            traffic,
            message: message.map(str::to_string),
        }
    }

    fn enter(phase: Phase, step: i32, message: &str) -> Transition {
        Transition::enter(phase, step, message)
    }

    fn record(record: Record, then: Then) -> Transition {
        Transition::new(vec![Effect::Record(record)], then)
    }

    fn succeed(unbind: &[&str]) -> Transition {
        Transition::new(vec![Effect::Succeed { unbind: names(unbind) }], Then::Done)
    }

    fn aborted(adopted: bool) -> Transition {
        Transition::new(vec![Effect::Aborted { adopted }], Then::Done)
    }

    /// One row of a table: a release, what it replaces, what was seen, and
    /// the transition it must take.
    struct Case {
        name: &'static str,
        release: Release,
        old: Option<Release>,
        bound: Vec<String>,
        seen: Observed,
        want: Transition,
    }

    fn case(name: &'static str, release: Release, old: Option<Release>, seen: Observed, want: Transition) -> Case {
        Case {
            name,
            release,
            old,
            bound: web(),
            seen,
            want,
        }
    }

    fn check(now: DateTime<Utc>, cases: Vec<Case>) {
        for c in cases {
            let m = Moment {
                release: &c.release,
                old: c.old.as_ref(),
                bound: &c.bound,
                now,
                deadline: DEADLINE,
            };
            assert_eq!(step(&m, &c.seen), c.want, "{}", c.name);
        }
    }

    fn with(mut r: Release, change: impl FnOnce(&mut Release)) -> Release {
        change(&mut r);
        r
    }

    #[test]
    fn a_rolling_or_recreate_release_applies_each_wave_then_gates_it_healthy() {
        let now = Utc::now();
        let mut cases = Vec::new();
        for strategy in [json!({"type": "rolling"}), json!({"type": "recreate"})] {
            let first = Release::test(1, None, strategy.clone(), "web:1");
            let out = with(first.clone(), |r| r.applied_wave = 0);
            cases.extend([
                case(
                    "the first wave goes out, then is looked at in the same tick",
                    first.clone(),
                    None,
                    Observed::new(),
                    Transition::new(
                        vec![
                            Effect::Apply {
                                services: web(),
                                view: View::Rollout,
                                hold: Vec::new(),
                            },
                            Effect::Record(Record::WaveApplied {
                                message: "waiting for web to be Healthy".into(),
                            }),
                        ],
                        Then::Again,
                    ),
                ),
                case(
                    "federation refusing the wave fails the release",
                    first.clone(),
                    None,
                    Observed::new().refused("web: quota exceeded"),
                    Transition::fail("web: quota exceeded"),
                ),
                case(
                    "a wave out is looked at",
                    out.clone(),
                    None,
                    Observed::new(),
                    Transition::look(Look::Health(web())),
                ),
                case(
                    "a Healthy wave lets the next go",
                    out.clone(),
                    None,
                    healthy(Look::Health(web())),
                    record(Record::WaveHealthy, Then::Next),
                ),
                case(
                    "a wave not yet Healthy waits",
                    out.clone(),
                    None,
                    waiting(Look::Health(web())),
                    Transition::poll(),
                ),
                case(
                    "health seen of something else is not this wave's",
                    out.clone(),
                    None,
                    healthy(Look::Health(names(&["db"]))),
                    Transition::look(Look::Health(web())),
                ),
                case(
                    "a binding gone fails the release",
                    out.clone(),
                    None,
                    gone(Look::Health(web())),
                    Transition::fail("web: its binding disappeared"),
                ),
                case(
                    "the health gate has a deadline",
                    with(out.clone(), |r| r.started_at = ago(now, 601)),
                    None,
                    waiting(Look::Health(web())),
                    Transition::fail("not every service was Healthy within 600s"),
                ),
                case(
                    "within the deadline it waits",
                    with(out.clone(), |r| r.started_at = ago(now, 599)),
                    None,
                    waiting(Look::Health(web())),
                    Transition::poll(),
                ),
                case(
                    "after the last wave the release has succeeded",
                    with(out.clone(), |r| r.wave = 1),
                    None,
                    Observed::new(),
                    succeed(&[]),
                ),
                case(
                    "replacing an unslotted release it succeeds without a handover",
                    with(out.clone(), |r| {
                        r.wave = 1;
                        r.replaces = Some(1);
                    }),
                    Some(rolling_old()),
                    Observed::new(),
                    succeed(&[]),
                ),
            ]);
        }
        let done = with(Release::test(2, None, json!({"type": "rolling"}), "web:2"), |r| {
            r.wave = 1;
            r.applied_wave = 0;
        });
        cases.push(Case {
            bound: names(&["cache", "web"]),
            ..case(
                "services the release no longer has lose their bindings",
                done,
                None,
                Observed::new(),
                succeed(&["cache"]),
            )
        });
        check(now, cases);
    }

    #[test]
    fn an_unslotted_release_after_a_slotted_one_hands_over_then_succeeds() {
        let now = Utc::now();
        let rolled = replacing(json!({"type": "rolling"}), None, "rollout", 0, "");
        let handed = with(rolled.clone(), |r| r.applied = "handed-over".into());
        check(
            now,
            vec![
                case(
                    "the old slot goes once every wave is Healthy",
                    rolled.clone(),
                    Some(blue_old()),
                    Observed::new(),
                    apply(
                        View::Final,
                        applied("handed-over", None, Some("removing release 1's slot")),
                    ),
                ),
                case(
                    "a refused handover fails the release",
                    rolled,
                    Some(blue_old()),
                    Observed::new().refused("web: quota exceeded"),
                    Transition::fail("removing release 1's slot was refused: web: quota exceeded"),
                ),
                case(
                    "handed over, it is looked at",
                    handed.clone(),
                    Some(blue_old()),
                    Observed::new(),
                    Transition::look(Look::Health(web())),
                ),
                case(
                    "Healthy after the handover: succeeded",
                    handed.clone(),
                    Some(blue_old()),
                    healthy(Look::Health(web())),
                    succeed(&[]),
                ),
                case(
                    "not Healthy yet: waits",
                    handed.clone(),
                    Some(blue_old()),
                    waiting(Look::Health(web())),
                    Transition::poll(),
                ),
                case(
                    "not Healthy within the deadline: failed",
                    with(handed.clone(), |r| r.started_at = ago(now, 700)),
                    Some(blue_old()),
                    waiting(Look::Health(web())),
                    Transition::fail("not Healthy within 600s after release 1's slot was removed (web: 0/1 ready)"),
                ),
                case(
                    "a binding gone: failed",
                    handed,
                    Some(blue_old()),
                    gone(Look::Health(web())),
                    Transition::fail("web: its binding disappeared"),
                ),
            ],
        );
    }

    #[test]
    fn a_slotted_release_after_an_unslotted_one_first_adopts_its_pods_into_the_first_slot() {
        let now = Utc::now();
        let fresh = with(
            replacing(json!({"type": "blue-green"}), Some("green"), "rollout", 0, ""),
            |r| {
                r.applied_wave = -1;
                r.wave = 0;
            },
        );
        let adopting = with(fresh.clone(), |r| r.applied = "adopt".into());
        let wave = Transition::new(
            vec![
                Effect::Apply {
                    services: web(),
                    view: View::Rollout,
                    hold: Vec::new(),
                },
                Effect::Record(Record::WaveApplied {
                    message: "waiting for web to be Healthy".into(),
                }),
            ],
            Then::Again,
        );
        check(
            now,
            vec![
                case(
                    "the running pods take slot blue first",
                    fresh.clone(),
                    Some(rolling_old()),
                    Observed::new(),
                    Transition::new(
                        vec![
                            Effect::Adopt(web()),
                            Effect::Record(applied("adopt", None, Some("release 1's pods take slot blue"))),
                        ],
                        Then::Poll,
                    ),
                ),
                case(
                    "a refused adoption fails the release",
                    fresh.clone(),
                    Some(rolling_old()),
                    Observed::new().refused("web: forbidden"),
                    Transition::fail("web: forbidden"),
                ),
                case(
                    "adoption not in time fails the release",
                    with(fresh, |r| r.started_at = ago(now, 601)),
                    Some(rolling_old()),
                    Observed::new(),
                    Transition::fail("the running version's pods did not take slot blue within 600s"),
                ),
                case(
                    "adopted, the old pods are looked at",
                    adopting.clone(),
                    Some(rolling_old()),
                    Observed::new(),
                    Transition::look(Look::Health(web())),
                ),
                case(
                    "adopted pods not yet Healthy: waits",
                    adopting.clone(),
                    Some(rolling_old()),
                    waiting(Look::Health(web())),
                    Transition::poll(),
                ),
                case(
                    "adopted pods Healthy: the new slot goes out in the same tick",
                    adopting.clone(),
                    Some(rolling_old()),
                    healthy(Look::Health(web())),
                    wave.clone(),
                ),
                case(
                    "a slotted predecessor needs no adoption",
                    with(adopting, |r| r.applied = String::new()),
                    Some(blue_old()),
                    Observed::new(),
                    wave,
                ),
            ],
        );
    }

    #[test]
    fn a_stateful_set_is_not_adopted_into_a_slot_and_the_release_says_it_rolled() {
        let now = Utc::now();
        let db = |mut r: Release| {
            r.objects["db"] = json!([{"kind": "StatefulSet", "metadata": {"name": "shop-db"}}]);
            r
        };
        let fresh = with(
            db(replacing(json!({"type": "canary"}), Some("blue"), "rollout", 0, "")),
            |r| {
                r.applied_wave = -1;
                r.wave = 0;
            },
        );
        let out = with(
            db(replacing(json!({"type": "canary"}), Some("green"), "rollout", 0, "")),
            |r| r.wave = 2,
        );
        check(
            now,
            vec![
                Case {
                    bound: names(&["db", "web"]),
                    ..case(
                        "only the Deployment's pods take slot blue",
                        fresh,
                        Some(db(rolling_old())),
                        Observed::new(),
                        Transition::new(
                            vec![
                                Effect::Adopt(web()),
                                Effect::Record(applied("adopt", None, Some("release 1's pods take slot blue"))),
                            ],
                            Then::Poll,
                        ),
                    )
                },
                case(
                    "traffic moves, saying which service rolled in place",
                    out,
                    Some(db(blue_old())),
                    Observed::new(),
                    enter(
                        Phase::Traffic,
                        0,
                        "web runs in both slots; db rolled in place (a StatefulSet or DaemonSet does not run in two slots); moving traffic",
                    ),
                ),
            ],
        );
    }

    #[test]
    fn blue_green_switches_the_service_then_waits_for_a_confirm() {
        let now = Utc::now();
        let bg = json!({"type": "blue-green"});
        let traffic = |applied: &str| replacing(bg.clone(), Some("green"), "traffic", 0, applied);
        let old = Some(blue_old());
        check(
            now,
            vec![
                case(
                    "both slots run: traffic moves",
                    replacing(bg.clone(), Some("green"), "rollout", 0, ""),
                    old.clone(),
                    Observed::new(),
                    enter(Phase::Traffic, 0, "every service runs in both slots; moving traffic"),
                ),
                case(
                    "the Service switches to green, all traffic at once",
                    traffic(""),
                    old.clone(),
                    Observed::new(),
                    apply(View::Traffic(0), applied("traffic-0", Some(100), None)),
                ),
                case(
                    "a refused switch returns to release 1",
                    traffic(""),
                    old.clone(),
                    Observed::new().refused("web: quota exceeded"),
                    Transition::abort("federation refused a step (web: quota exceeded); returning to release 1"),
                ),
                case(
                    "switched, it is looked at",
                    traffic("traffic-0"),
                    old.clone(),
                    Observed::new(),
                    Transition::look(Look::Health(web())),
                ),
                case(
                    "Healthy: waits for a person",
                    traffic("traffic-0"),
                    old.clone(),
                    healthy(Look::Health(web())),
                    enter(
                        Phase::Waiting,
                        0,
                        "green serves; confirm to remove the old slot, or abort to switch back to release 1",
                    ),
                ),
                case(
                    "not Healthy within the deadline: back to release 1",
                    with(traffic("traffic-0"), |r| r.phase_started_at = ago(now, 601)),
                    old.clone(),
                    waiting(Look::Health(web())),
                    Transition::abort("not Healthy within 600s (web: 0/1 ready); returning to release 1"),
                ),
                case(
                    "a binding gone: back to release 1",
                    traffic("traffic-0"),
                    old.clone(),
                    gone(Look::Health(web())),
                    Transition::abort("web: its binding disappeared; returning to release 1"),
                ),
                case(
                    "waiting, the driver does nothing",
                    replacing(bg.clone(), Some("green"), "waiting", 0, "traffic-0"),
                    old.clone(),
                    Observed::new(),
                    Transition::new(Vec::new(), Then::Idle),
                ),
            ],
        );
        assert_eq!(Transition::enter(Phase::Waiting, 0, "x").then, Then::Idle);
    }

    #[test]
    fn finishing_leaves_the_new_slot_alone_then_succeeds() {
        let now = Utc::now();
        for strategy in [
            json!({"type": "blue-green"}),
            json!({"type": "canary"}),
            json!({"type": "shadow"}),
        ] {
            let finishing = |applied: &str| replacing(strategy.clone(), Some("green"), "finishing", 0, applied);
            check(
                now,
                vec![
                    case(
                        "only the new slot, serving everything",
                        finishing("traffic-0"),
                        Some(blue_old()),
                        Observed::new(),
                        apply(View::Final, applied("finishing", Some(100), None)),
                    ),
                    case(
                        "refused: back to release 1",
                        finishing("traffic-0"),
                        Some(blue_old()),
                        Observed::new().refused("web: quota exceeded"),
                        Transition::abort("federation refused a step (web: quota exceeded); returning to release 1"),
                    ),
                    case(
                        "Healthy: succeeded",
                        finishing("finishing"),
                        Some(blue_old()),
                        healthy(Look::Health(web())),
                        succeed(&[]),
                    ),
                    case(
                        "not yet: waits",
                        finishing("finishing"),
                        Some(blue_old()),
                        waiting(Look::Health(web())),
                        Transition::poll(),
                    ),
                    case(
                        "not within the deadline: failed",
                        with(finishing("finishing"), |r| r.phase_started_at = ago(now, 601)),
                        Some(blue_old()),
                        waiting(Look::Health(web())),
                        Transition::fail("not Healthy within 600s after the old slot was removed (web: 0/1 ready)"),
                    ),
                    case(
                        "a binding gone: failed",
                        finishing("finishing"),
                        Some(blue_old()),
                        gone(Look::Health(web())),
                        Transition::fail("web: its binding disappeared"),
                    ),
                ],
            );
        }
    }

    #[test]
    fn a_canary_moves_step_by_step_pausing_or_holding_as_told() {
        let now = Utc::now();
        let canary = |extra: Value| {
            let mut s = json!({"type": "canary", "steps": [10, 50, 100]});
            s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            s
        };
        let at =
            |strategy: Value, step: i32, applied: &str| replacing(strategy, Some("green"), "traffic", step, applied);
        let old = Some(blue_old());
        let seen = healthy(Look::Health(web()));
        check(
            now,
            vec![
                case(
                    "step 1 weights the route 50%",
                    at(canary(json!({})), 1, "traffic-0"),
                    old.clone(),
                    Observed::new(),
                    apply(View::Traffic(1), applied("traffic-1", Some(50), None)),
                ),
                case(
                    "a Healthy step goes on to the next",
                    at(canary(json!({})), 0, "traffic-0"),
                    old.clone(),
                    seen.clone(),
                    enter(Phase::Traffic, 1, "10% on green was Healthy; next step"),
                ),
                case(
                    "the last step Healthy: the canary becomes stable",
                    at(canary(json!({})), 2, "traffic-2"),
                    old.clone(),
                    seen.clone(),
                    enter(
                        Phase::Finishing,
                        2,
                        "every step passed; the canary becomes the stable version",
                    ),
                ),
                case(
                    "past the last step (resumed there): finishing",
                    at(canary(json!({})), 3, "traffic-2"),
                    old.clone(),
                    Observed::new(),
                    enter(
                        Phase::Finishing,
                        3,
                        "every step passed; the canary becomes the stable version",
                    ),
                ),
                case(
                    "paused: waits for a resume at each step",
                    at(canary(json!({"pause": true})), 0, "traffic-0"),
                    old.clone(),
                    seen.clone(),
                    enter(Phase::Waiting, 0, "paused at 10% on green; resume, promote or abort"),
                ),
                case(
                    "holding: the hold starts",
                    at(canary(json!({"pause_seconds": 30})), 1, "traffic-1"),
                    old.clone(),
                    seen.clone(),
                    record(
                        Record::Hold {
                            seconds: 30,
                            message: "50% on green; holding 30s".into(),
                        },
                        Then::Poll,
                    ),
                ),
                case(
                    "holding: not over yet",
                    with(at(canary(json!({"pause_seconds": 30})), 1, "traffic-1"), |r| {
                        r.hold_until = Some(now + chrono::Duration::seconds(5));
                    }),
                    old.clone(),
                    seen.clone(),
                    Transition::poll(),
                ),
                case(
                    "holding: over, the next step",
                    with(at(canary(json!({"pause_seconds": 30})), 1, "traffic-1"), |r| {
                        r.hold_until = ago(now, 1);
                    }),
                    old.clone(),
                    seen.clone(),
                    enter(Phase::Traffic, 2, "50% on green was Healthy; next step"),
                ),
                case(
                    "a step not Healthy in time: back to release 1",
                    with(at(canary(json!({})), 1, "traffic-1"), |r| {
                        r.phase_started_at = ago(now, 601);
                    }),
                    old.clone(),
                    waiting(Look::Health(web())),
                    Transition::abort("not Healthy within 600s (web: 0/1 ready); returning to release 1"),
                ),
            ],
        );
    }

    #[test]
    fn ab_and_shadow_hold_their_route_until_promoted() {
        let now = Utc::now();
        let ab = json!({"type": "ab", "match": {"header": {"name": "x-version", "value": "b"}}});
        let seen = healthy(Look::Health(web()));
        check(
            now,
            vec![
                case(
                    "A/B: the matching route, no weight",
                    replacing(ab.clone(), Some("green"), "traffic", 0, ""),
                    Some(blue_old()),
                    Observed::new(),
                    apply(View::Traffic(0), applied("traffic-0", Some(0), None)),
                ),
                case(
                    "A/B Healthy: waits for a promote",
                    replacing(ab, Some("green"), "traffic", 0, "traffic-0"),
                    Some(blue_old()),
                    seen.clone(),
                    enter(
                        Phase::Waiting,
                        0,
                        "matching requests go to green; promote it, or abort to return to release 1",
                    ),
                ),
                case(
                    "shadow Healthy: waits for a promote",
                    replacing(json!({"type": "shadow"}), Some("green"), "traffic", 0, "traffic-0"),
                    Some(blue_old()),
                    seen.clone(),
                    enter(
                        Phase::Waiting,
                        0,
                        "requests are mirrored to green; promote it, or abort to return to release 1",
                    ),
                ),
                case(
                    "an unslotted release in traffic is a stored inconsistency: failed",
                    replacing(json!({"type": "rolling"}), Some("green"), "traffic", 0, "traffic-0"),
                    Some(blue_old()),
                    seen,
                    Transition::fail("an unslotted release has no traffic phase"),
                ),
            ],
        );
    }

    fn gray(pause: Value, deadline: Option<u32>) -> Value {
        let mut s = json!({"type": "gray", "pause": pause});
        if let Some(d) = deadline {
            s["deadline_seconds"] = json!(d);
        }
        s
    }

    fn two_waves() -> Vec<GrayWave> {
        vec![
            GrayWave {
                name: "dc1".into(),
                clusters: names(&["dc1"]),
            },
            GrayWave {
                name: "dc2".into(),
                clusters: names(&["dc2"]),
            },
        ]
    }

    /// A gray release over dc1 then dc2 at wave `step`, `applied` applied.
    fn gray_at(strategy: Value, step: i32, applied: &str) -> Release {
        with(replacing(strategy, None, "rollout", step, applied), |r| {
            r.applied_wave = -1;
            r.wave = 0;
            r.gray_waves = Some(json!(two_waves()));
        })
    }

    #[test]
    fn a_gray_release_goes_wave_by_wave_gated_and_paused() {
        let now = Utc::now();
        let old = Some(rolling_old());
        let in_dc1 = Look::HealthIn {
            services: web(),
            clusters: names(&["dc1"]),
        };
        let unfixed = with(gray_at(gray(json!("manual"), None), 0, ""), |r| r.gray_waves = None);
        let placement = Look::Placement(names(&["web", "web"]));
        let placed = |targets: &[(&str, &str)]| {
            Observed::new().saw(
                placement.clone(),
                Found::Placed(targets.iter().map(|(c, p)| ((*c).into(), (*p).into())).collect()),
            )
        };
        check(
            now,
            vec![
                case(
                    "the waves are fixed from where the bindings run",
                    unfixed.clone(),
                    old.clone(),
                    Observed::new(),
                    Transition::look(placement.clone()),
                ),
                case(
                    "one wave per cluster, written down once",
                    unfixed.clone(),
                    old.clone(),
                    placed(&[("dc1", "p1"), ("dc2", "p2")]),
                    record(
                        Record::Waves {
                            waves: two_waves(),
                            message: "2 waves: dc1, dc2".into(),
                        },
                        Then::Next,
                    ),
                ),
                case(
                    "running nowhere: failed",
                    unfixed.clone(),
                    old.clone(),
                    placed(&[]),
                    Transition::fail("the application runs in no cluster; nothing to roll out wave by wave"),
                ),
                case(
                    "an order naming a cluster it does not run in: failed",
                    with(unfixed, |r| {
                        r.strategy = json!({"type": "gray", "order": ["dc9"]});
                    }),
                    old.clone(),
                    placed(&[("dc1", "p1")]),
                    Transition::fail("strategy.order names cluster dc9, where the application runs nothing"),
                ),
                case(
                    "wave 1 goes out, dc2 held",
                    gray_at(gray(json!("manual"), None), 0, ""),
                    old.clone(),
                    Observed::new(),
                    Transition::new(
                        vec![
                            Effect::Apply {
                                services: web(),
                                view: View::Rollout,
                                hold: names(&["dc2"]),
                            },
                            Effect::Record(Record::WaveOut {
                                key: "gray-0".into(),
                                message: "wave 1 of 2 (dc1): waiting for dc1 to be Available".into(),
                            }),
                        ],
                        Then::Poll,
                    ),
                ),
                case(
                    "a refused wave fails the release",
                    gray_at(gray(json!("manual"), None), 0, ""),
                    old.clone(),
                    Observed::new().refused("web: quota exceeded"),
                    Transition::fail("wave 1 of 2 (dc1): web: quota exceeded"),
                ),
                case(
                    "wave 1 is looked at in dc1 only",
                    gray_at(gray(json!("manual"), None), 0, "gray-0"),
                    old.clone(),
                    Observed::new(),
                    Transition::look(in_dc1.clone()),
                ),
                case(
                    "manual: a Healthy wave waits for a promote",
                    gray_at(gray(json!("manual"), None), 0, "gray-0"),
                    old.clone(),
                    healthy(in_dc1.clone()),
                    enter(
                        Phase::Waiting,
                        0,
                        "wave 1 of 2 (dc1) runs release 2; promote to go on to dc2, or abort to return to release 1",
                    ),
                ),
                case(
                    "a pause of seconds holds",
                    gray_at(gray(json!(5), None), 0, "gray-0"),
                    old.clone(),
                    healthy(in_dc1.clone()),
                    record(
                        Record::Hold {
                            seconds: 5,
                            message: "wave 1 of 2 (dc1) is Available; holding 5s before dc2".into(),
                        },
                        Then::Poll,
                    ),
                ),
                case(
                    "a hold not over waits",
                    with(gray_at(gray(json!(5), None), 0, "gray-0"), |r| {
                        r.hold_until = Some(now + chrono::Duration::seconds(3));
                    }),
                    old.clone(),
                    healthy(in_dc1.clone()),
                    Transition::poll(),
                ),
                case(
                    "a hold over: the next wave",
                    with(gray_at(gray(json!(5), None), 0, "gray-0"), |r| {
                        r.hold_until = ago(now, 1);
                    }),
                    old.clone(),
                    healthy(in_dc1.clone()),
                    enter(Phase::Rollout, 1, "wave 1 of 2 (dc1) was Available; next dc2"),
                ),
                case(
                    "no pause: the next wave at once",
                    gray_at(gray(json!(0), None), 0, "gray-0"),
                    old.clone(),
                    healthy(in_dc1.clone()),
                    enter(Phase::Rollout, 1, "wave 1 of 2 (dc1) was Available; next dc2"),
                ),
                case(
                    "the last wave goes out unheld",
                    gray_at(gray(json!(0), None), 1, "gray-0"),
                    old.clone(),
                    Observed::new(),
                    Transition::new(
                        vec![
                            Effect::Apply {
                                services: web(),
                                view: View::Rollout,
                                hold: Vec::new(),
                            },
                            Effect::Record(Record::WaveOut {
                                key: "gray-1".into(),
                                message: "wave 2 of 2 (dc2): waiting for dc2 to be Available".into(),
                            }),
                        ],
                        Then::Poll,
                    ),
                ),
                case(
                    "the last wave Healthy: succeeded",
                    gray_at(gray(json!("manual"), None), 1, "gray-1"),
                    old.clone(),
                    healthy(Look::HealthIn {
                        services: web(),
                        clusters: names(&["dc2"]),
                    }),
                    succeed(&[]),
                ),
                case(
                    "a wave not Available within its deadline fails, the rest keep the old release",
                    with(gray_at(gray(json!(0), Some(60)), 0, "gray-0"), |r| {
                        r.phase_started_at = ago(now, 61);
                    }),
                    old.clone(),
                    waiting(in_dc1.clone()),
                    Transition::fail(
                        "wave 1 of 2 (dc1) was not Available within 60s (web: 0/1 ready); dc2 keep release 1",
                    ),
                ),
                case(
                    "within its deadline it waits",
                    with(gray_at(gray(json!(0), Some(60)), 0, "gray-0"), |r| {
                        r.phase_started_at = ago(now, 59);
                    }),
                    old.clone(),
                    waiting(in_dc1.clone()),
                    Transition::poll(),
                ),
                case(
                    "a binding gone fails the release",
                    gray_at(gray(json!(0), None), 0, "gray-0"),
                    old.clone(),
                    gone(in_dc1),
                    Transition::fail("web: its binding disappeared"),
                ),
                case(
                    "a first gray release (nothing to replace) rolls out like any other",
                    Release::test(1, None, gray(json!("manual"), None), "web:1"),
                    None,
                    Observed::new().refused("web: quota exceeded"),
                    Transition::fail("web: quota exceeded"),
                ),
            ],
        );
    }

    #[test]
    fn an_abort_or_a_rollback_returns_to_the_replaced_release_from_every_phase() {
        let now = Utc::now();
        let bg = json!({"type": "blue-green"});
        let back = apply(View::Back, applied("aborting", Some(0), None));
        let mut cases = Vec::new();
        // (strategy, slot, what was applied when the abort landed, the replaced release)
        let touched = [
            (
                bg.clone(),
                Some("green"),
                0,
                "",
                blue_old(),
                "during the rollout, the wave out",
            ),
            (bg.clone(), Some("green"), 0, "traffic-0", blue_old(), "during traffic"),
            (
                json!({"type": "canary"}),
                Some("green"),
                2,
                "traffic-2",
                blue_old(),
                "at a canary's third step",
            ),
            (
                bg.clone(),
                Some("green"),
                0,
                "finishing",
                blue_old(),
                "after a refused finish",
            ),
            (
                gray(json!("manual"), None),
                None,
                -1,
                "gray-0",
                rolling_old(),
                "at a gray release's first wave",
            ),
        ];
        for (strategy, slot, applied_wave, applied, old, when) in touched {
            let r = with(replacing(strategy, slot, "aborting", 0, applied), |r| {
                r.applied_wave = applied_wave;
            });
            cases.push(case(when, r.clone(), Some(old.clone()), Observed::new(), back.clone()));
            cases.push(case(
                when,
                r,
                Some(old),
                Observed::new().refused("web: quota exceeded"),
                Transition::fail("returning to release 1 was refused: web: quota exceeded"),
            ));
        }
        let untouched = |applied: &str| {
            with(replacing(bg.clone(), Some("green"), "aborting", 0, applied), |r| {
                r.applied_wave = -1;
            })
        };
        let returned = replacing(bg.clone(), Some("green"), "aborting", 0, "aborting");
        cases.extend([
            case(
                "aborted before anything of the new version went out: nothing to switch back",
                untouched(""),
                Some(blue_old()),
                Observed::new(),
                Transition::look(Look::Health(web())),
            ),
            case(
                "aborted while the old pods took their slot: nothing to switch back either",
                untouched("adopt"),
                Some(rolling_old()),
                healthy(Look::Health(web())),
                aborted(false),
            ),
            case(
                "switched back and Healthy: aborted, the old release in its slot",
                returned.clone(),
                Some(blue_old()),
                healthy(Look::Health(web())),
                aborted(true),
            ),
            case(
                "a gray release returned: aborted, no slot",
                with(gray_at(gray(json!("manual"), None), 0, "aborting"), |r| {
                    r.phase = "aborting".into();
                }),
                Some(rolling_old()),
                healthy(Look::Health(web())),
                aborted(false),
            ),
            case(
                "switched back, not settled yet: waits",
                returned.clone(),
                Some(blue_old()),
                waiting(Look::Health(web())),
                Transition::poll(),
            ),
            case(
                "switched back, not settled in time: failed",
                with(returned.clone(), |r| r.phase_started_at = ago(now, 601)),
                Some(blue_old()),
                waiting(Look::Health(web())),
                Transition::fail("returning to release 1 did not settle within 600s (web: 0/1 ready)"),
            ),
            case(
                "a binding gone on the way back: failed",
                returned.clone(),
                Some(blue_old()),
                gone(Look::Health(web())),
                Transition::fail("web: its binding disappeared"),
            ),
            case(
                "nothing to return to: failed",
                returned,
                None,
                Observed::new(),
                Transition::fail("aborted, but there is no earlier release to return to"),
            ),
        ]);
        check(now, cases);
    }

    #[test]
    fn on_the_way_back_only_the_services_the_replaced_release_had_are_looked_at() {
        let mut r = replacing(json!({"type": "blue-green"}), Some("green"), "aborting", 0, "aborting");
        r.objects["cache"] = json!([]);
        let m = Moment {
            release: &r,
            old: Some(&blue_old()),
            bound: &names(&["cache", "web"]),
            now: Utc::now(),
            deadline: DEADLINE,
        };
        assert_eq!(step(&m, &Observed::new()), Transition::look(Look::Health(web())));
        let forward = with(r.clone(), |r| r.applied = "traffic-0".into());
        let m = Moment { release: &forward, ..m };
        assert_eq!(
            step(&m, &Observed::new()),
            Transition::apply(View::Back, names(&["cache", "web"]), applied("aborting", Some(0), None)),
            "every service of the new release is switched back (one the old lacked loses its binding)"
        );
    }

    #[test]
    fn records_write_the_next_state_into_the_release() {
        let now = Utc::now();
        let mut r = Release::test(1, None, json!({"type": "rolling"}), "web:1");
        Record::WaveApplied { message: "m".into() }.apply_to(&mut r, now);
        assert_eq!((r.applied_wave, r.message.as_str()), (0, "m"));
        Record::WaveHealthy.apply_to(&mut r, now);
        assert_eq!(r.wave, 1);
        applied("traffic-1", Some(50), None).apply_to(&mut r, now);
        assert_eq!(
            (r.applied.as_str(), r.traffic, r.message.as_str()),
            ("traffic-1", 50, "m")
        );
        Record::Hold {
            seconds: 30,
            message: "hold".into(),
        }
        .apply_to(&mut r, now);
        assert_eq!(r.hold_until, Some(now + chrono::Duration::seconds(30)));
        Record::WaveOut {
            key: "gray-0".into(),
            message: "out".into(),
        }
        .apply_to(&mut r, now);
        assert_eq!((r.hold_until, r.phase_started_at), (None, Some(now)));
        Record::Waves {
            waves: two_waves(),
            message: "2 waves".into(),
        }
        .apply_to(&mut r, now);
        assert_eq!(r.gray_waves(), Some(two_waves()));
    }

    #[test]
    fn every_stored_phase_reads_back_and_an_unknown_one_idles() {
        for p in [
            Phase::Rollout,
            Phase::Traffic,
            Phase::Waiting,
            Phase::Finishing,
            Phase::Aborting,
            Phase::Done,
        ] {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        let r = with(Release::test(1, None, json!({"type": "rolling"}), "web:1"), |r| {
            r.phase = "sideways".into();
        });
        let m = Moment {
            release: &r,
            old: None,
            bound: &[],
            now: Utc::now(),
            deadline: DEADLINE,
        };
        assert_eq!(step(&m, &Observed::new()), Transition::new(Vec::new(), Then::Idle));
    }

    /// Runs transitions as the driver does, against a world where every
    /// look is Healthy and every record and move lands, until the release is
    /// done or waits for a person.
    fn drive(mut release: Release, old: &Release, placed: &[(&str, &str)]) -> Vec<String> {
        let now = Utc::now();
        let mut trail = Vec::new();
        let mut seen = Observed::new();
        for _ in 0..100 {
            let m = Moment {
                release: &release,
                old: Some(old),
                bound: &["web".to_string()],
                now,
                deadline: DEADLINE,
            };
            let t = step(&m, &seen);
            if let Then::Look(look) = t.then {
                let found = match look {
                    Look::Placement(_) => {
                        Found::Placed(placed.iter().map(|(c, p)| ((*c).into(), (*p).into())).collect())
                    }
                    _ => Found::Healthy,
                };
                seen = seen.saw(look, found);
                continue;
            }
            seen = Observed::new();
            for e in t.effects {
                match e {
                    Effect::Record(r) => {
                        trail.push(
                            format!("{r:?}")
                                .split([' ', '{'])
                                .next()
                                .unwrap_or_default()
                                .to_string(),
                        );
                        r.apply_to(&mut release, now - chrono::Duration::seconds(1));
                        // A hold is over by the next look.
                        release.hold_until = release.hold_until.map(|_| now - chrono::Duration::seconds(1));
                    }
                    Effect::Enter { phase, step, .. } => {
                        trail.push(format!("{} {step}", phase.as_str()));
                        release.phase = phase.as_str().into();
                        release.step = step;
                        release.hold_until = None;
                    }
                    Effect::Apply { view, .. } => trail.push(format!("apply {view:?}")),
                    Effect::Adopt(services) => trail.push(format!("adopt {}", services.join(","))),
                    other => {
                        trail.push(format!("{other:?}"));
                        return trail;
                    }
                }
            }
            if t.then == Then::Idle {
                return trail;
            }
        }
        panic!("no end: {trail:?}");
    }

    #[test]
    fn whole_releases_run_from_rollout_to_their_end() {
        let canary = Release::test(
            2,
            Some("green"),
            json!({"type": "canary", "steps": [10, 100], "pause_seconds": 5}),
            "web:2",
        );
        let canary = with(canary, |r| r.replaces = Some(1));
        assert_eq!(
            drive(canary, &blue_old(), &[]),
            [
                "apply Rollout",
                "WaveApplied",
                "WaveHealthy",
                "traffic 0",
                "apply Traffic(0)",
                "Applied",
                "Hold",
                "traffic 1",
                "apply Traffic(1)",
                "Applied",
                "finishing 1",
                "apply Final",
                "Applied",
                "Succeed { unbind: [] }"
            ]
        );
        let gray = with(Release::test(2, None, gray(json!(0), None), "web:2"), |r| {
            r.replaces = Some(1);
        });
        assert_eq!(
            drive(gray, &rolling_old(), &[("dc1", "p1"), ("dc2", "p1")]),
            [
                "Waves",
                "apply Rollout",
                "WaveOut",
                "rollout 1",
                "apply Rollout",
                "WaveOut",
                "Succeed { unbind: [] }"
            ]
        );
        let bg = with(
            Release::test(2, Some("green"), json!({"type": "blue-green"}), "web:2"),
            |r| {
                r.replaces = Some(1);
            },
        );
        assert_eq!(
            drive(bg, &rolling_old(), &[]),
            [
                "adopt web",
                "Applied",
                "apply Rollout",
                "WaveApplied",
                "WaveHealthy",
                "traffic 0",
                "apply Traffic(0)",
                "Applied",
                "waiting 0"
            ],
            "a blue-green release waits for a confirm"
        );
    }
}
