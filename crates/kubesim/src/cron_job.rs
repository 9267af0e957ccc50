//! The CronJob controller: standard five-field schedules (and `@hourly`,
//! `@daily`, ... nicknames) evaluated with the `croner` crate in UTC or in
//! the IANA `timeZone` (the system's zoneinfo, through `jiff`); at the
//! most recent scheduled time since `lastScheduleTime` (or creation) it
//! creates the Job `<name>-<minutes since the epoch>` from `jobTemplate`,
//! unless `suspend`ed or past `startingDeadlineSeconds`; `concurrencyPolicy`
//! Allow, Forbid (the run is skipped with `JobAlreadyActive`) or Replace
//! (the running Jobs are deleted); finished Jobs beyond
//! `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` are deleted,
//! oldest first; status `active`, `lastScheduleTime`, `lastSuccessfulTime`.
//!
//! Differences: a `timeZone`'s offset is the one in force at evaluation, so
//! a run due across a daylight-saving change may be off by the change;
//! `@every` is not accepted, and a missed-run storm raises no
//! `TooManyMissedTimes`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde_json::{Value, json};

use crate::event::{self, Source, Type};
use crate::job::{self, time};
use crate::resource;
use crate::status::Error;
use crate::store::{Store, WriteOptions, meta_str};
use crate::workload::{self, deleting, owned, owner_ref};

const CONTROLLER: &str = "cronjob-controller";

/// Parses a CronJob schedule as the API server accepts it.
///
/// # Errors
/// Why the schedule is not a five-field cron expression.
pub(crate) fn parse_schedule(schedule: &str) -> Result<Cron, String> {
    if schedule.contains("TZ") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    let fields = schedule.split_whitespace().count();
    if !schedule.trim_start().starts_with('@') && fields != 5 {
        return Err(format!("expected exactly 5 fields, found {fields}: [{schedule}]"));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|e| e.to_string())
}

/// Checks a CronJob's `timeZone` as the API server does: an IANA name
/// known to the time zone database, not `Local`.
///
/// # Errors
/// Why the name is not a time zone.
pub(crate) fn parse_time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    if name.eq_ignore_ascii_case("local") || name.contains('\\') || name.starts_with('/') {
        return Err(format!("unknown time zone {name}"));
    }
    jiff::tz::TimeZone::get(name).map_err(|_| format!("unknown time zone {name}"))
}

/// The most recent scheduled time in `(after, now]`, if any, with the
/// schedule read in `zone` (UTC without one).
fn due_time(
    cron: &Cron,
    zone: Option<&jiff::tz::TimeZone>,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let Some(zone) = zone else {
        return cron.find_previous_occurrence(&now, true).ok().filter(|t| *t > after);
    };
    let instant = jiff::Timestamp::from_second(now.timestamp()).ok()?;
    let offset = chrono::FixedOffset::east_opt(zone.to_offset(instant).seconds())?;
    cron.find_previous_occurrence(&now.with_timezone(&offset), true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t > after)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn job_ref(job: &Value) -> Value {
    json!({
        "kind": "Job", "namespace": job["metadata"]["namespace"], "name": job["metadata"]["name"],
        "uid": job["metadata"]["uid"], "apiVersion": "batch/v1", "resourceVersion": job["metadata"]["resourceVersion"],
    })
}

fn delete_job(store: &Store, cj: &Value, job: &Value) {
    if store
        .delete(
            resource::JOBS,
            meta_str(job, "namespace"),
            meta_str(job, "name"),
            false,
            false,
        )
        .is_ok()
    {
        let message = format!("Deleted job {}", meta_str(job, "name"));
        event::record(
            store,
            cj,
            Type::Normal,
            "SuccessfulDelete",
            &message,
            Source::controller(CONTROLLER),
        );
    }
}

/// One pass of the CronJob controller. `announced` remembers the scheduled
/// time each Forbid CronJob last reported `JobAlreadyActive` for, so a
/// skipped run is reported once.
pub(crate) fn reconcile(store: &Store, announced: &mut HashMap<String, i64>) {
    let now = Utc::now();
    for cj in store.all(resource::CRONJOBS) {
        if deleting(&cj) {
            continue;
        }
        let (ns, name, uid) = (meta_str(&cj, "namespace"), meta_str(&cj, "name"), meta_str(&cj, "uid"));
        let spec = &cj["spec"];
        let previous = &cj["status"];
        let jobs = owned(store, resource::JOBS, ns, uid);
        let listed: Vec<&str> = previous["active"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["uid"].as_str())
            .collect();
        let mut last_success = time(&previous["lastSuccessfulTime"]);
        let mut active: Vec<Arc<Value>> = Vec::new();
        let mut succeeded = Vec::new();
        let mut failed = Vec::new();
        for j in jobs.into_iter().filter(|j| !deleting(j)) {
            match job::finished(&j) {
                None => active.push(j),
                Some(ok) => {
                    if listed.contains(&meta_str(&j, "uid")) {
                        let how = if ok { "Complete" } else { "Failed" };
                        let message = format!("Saw completed job: {}, condition: {how}", meta_str(&j, "name"));
                        event::record(
                            store,
                            &cj,
                            Type::Normal,
                            "SawCompletedJob",
                            &message,
                            Source::controller(CONTROLLER),
                        );
                    }
                    if ok {
                        last_success = last_success.max(job::finish_time(&j));
                        succeeded.push(j);
                    } else {
                        failed.push(j);
                    }
                }
            }
        }
        for (mut finished, limit) in [
            (succeeded, spec["successfulJobsHistoryLimit"].as_i64().unwrap_or(3)),
            (failed, spec["failedJobsHistoryLimit"].as_i64().unwrap_or(1)),
        ] {
            finished.sort_by_key(|j| job::finish_time(j).unwrap_or(now));
            let extra = finished.len().saturating_sub(usize::try_from(limit).unwrap_or(0));
            for j in &finished[..extra] {
                delete_job(store, &cj, j);
            }
        }

        let mut last_schedule = time(&previous["lastScheduleTime"]);
        let scheduled = if spec["suspend"] == true {
            None
        } else {
            let earliest = last_schedule
                .or_else(|| time(&cj["metadata"]["creationTimestamp"]))
                .unwrap_or(now);
            let zone = spec["timeZone"].as_str().and_then(|z| parse_time_zone(z).ok());
            parse_schedule(spec["schedule"].as_str().unwrap_or_default())
                .ok()
                .and_then(|cron| due_time(&cron, zone.as_ref(), earliest, now))
                .filter(|t| {
                    spec["startingDeadlineSeconds"]
                        .as_i64()
                        .is_none_or(|d| now - *t <= chrono::Duration::seconds(d))
                })
        };
        if let Some(t) = scheduled {
            let policy = spec["concurrencyPolicy"].as_str().unwrap_or("Allow");
            if policy == "Forbid" && !active.is_empty() {
                if announced.get(uid) != Some(&t.timestamp()) {
                    announced.insert(uid.to_string(), t.timestamp());
                    event::record(
                        store,
                        &cj,
                        Type::Normal,
                        "JobAlreadyActive",
                        "Not starting job because prior execution is running and concurrency policy is Forbid",
                        Source::controller(CONTROLLER),
                    );
                }
            } else {
                if policy == "Replace" {
                    for j in active.drain(..) {
                        delete_job(store, &cj, &j);
                    }
                }
                let template = &spec["jobTemplate"];
                let job_name = format!("{name}-{}", t.timestamp() / 60);
                let mut annotations = template["metadata"]["annotations"].clone();
                if !annotations.is_object() {
                    annotations = json!({});
                }
                annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] = json!(rfc3339(t));
                let job = json!({
                    "metadata": {
                        "name": job_name,
                        "labels": template["metadata"]["labels"].as_object().cloned().unwrap_or_default(),
                        "annotations": annotations,
                        "ownerReferences": owner_ref(&cj),
                    },
                    "spec": template["spec"],
                });
                match store.create(resource::JOBS, ns, job, &WriteOptions::by(workload::MANAGER)) {
                    Ok(j) => {
                        let message = format!("Created job {job_name}");
                        event::record(
                            store,
                            &cj,
                            Type::Normal,
                            "SuccessfulCreate",
                            &message,
                            Source::controller(CONTROLLER),
                        );
                        active.push(j);
                        last_schedule = Some(t);
                    }
                    // Already created for this time (by an earlier pass).
                    Err(Error::AlreadyExists { .. }) => last_schedule = Some(t),
                    Err(e) => {
                        let message = format!("Error creating job: {e}");
                        event::record(
                            store,
                            &cj,
                            Type::Warning,
                            "FailedCreate",
                            &message,
                            Source::controller(CONTROLLER),
                        );
                    }
                }
            }
        }

        let refs: Vec<Value> = active
            .iter()
            .map(|j| {
                previous["active"]
                    .as_array()
                    .and_then(|rs| rs.iter().find(|r| r["uid"] == j["metadata"]["uid"]).cloned())
                    .unwrap_or_else(|| job_ref(j))
            })
            .collect();
        let mut status = json!({});
        if !refs.is_empty() {
            status["active"] = json!(refs);
        }
        if let Some(t) = last_schedule {
            status["lastScheduleTime"] = json!(rfc3339(t));
        }
        if let Some(t) = last_success {
            status["lastSuccessfulTime"] = json!(rfc3339(t));
        }
        if cj.get("status") != Some(&status) {
            let _ = store.modify(
                resource::CRONJOBS,
                ns,
                name,
                &WriteOptions::by(workload::MANAGER).status(),
                |cur| {
                    let mut c = cur.clone();
                    c["status"] = status;
                    Ok(c)
                },
            );
        }
    }
    announced.retain(|uid, _| {
        store
            .lock()
            .map(resource::CRONJOBS)
            .values()
            .any(|c| meta_str(c, "uid") == uid)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn schedules_are_five_fields_or_a_nickname() {
        assert!(parse_schedule("*/5 * * * *").is_ok());
        assert!(parse_schedule("@hourly").is_ok());
        assert!(
            parse_schedule("0 */5 * * * *")
                .unwrap_err()
                .contains("expected exactly 5 fields")
        );
        assert!(parse_schedule("CRON_TZ=UTC 0 * * * *").is_err());
        assert!(parse_schedule("61 * * * *").is_err());
    }

    #[test]
    fn the_due_time_is_the_latest_scheduled_time_since_the_last_run() {
        let cron = parse_schedule("*/5 * * * *").unwrap();
        let now = at("2026-01-01T10:12:30Z");
        assert_eq!(
            due_time(&cron, None, at("2026-01-01T09:00:00Z"), now),
            Some(at("2026-01-01T10:10:00Z"))
        );
        assert_eq!(due_time(&cron, None, at("2026-01-01T10:10:00Z"), now), None);
        assert_eq!(
            due_time(&cron, None, at("2026-01-01T10:10:00Z"), at("2026-01-01T10:15:00Z")),
            Some(at("2026-01-01T10:15:00Z"))
        );
    }

    #[test]
    fn a_time_zone_moves_the_schedule_to_its_wall_clock() {
        let daily = parse_schedule("0 9 * * *").unwrap();
        let tokyo = parse_time_zone("Asia/Tokyo").unwrap();
        // 09:00 in Tokyo (UTC+9) is 00:00 UTC.
        assert_eq!(
            due_time(
                &daily,
                Some(&tokyo),
                at("2026-01-01T00:00:00Z"),
                at("2026-01-02T01:00:00Z")
            ),
            Some(at("2026-01-02T00:00:00Z"))
        );
        // Berlin in summer is UTC+2: 09:00 is 07:00 UTC.
        let berlin = parse_time_zone("Europe/Berlin").unwrap();
        assert_eq!(
            due_time(
                &daily,
                Some(&berlin),
                at("2026-07-01T00:00:00Z"),
                at("2026-07-01T08:00:00Z")
            ),
            Some(at("2026-07-01T07:00:00Z"))
        );
        assert_eq!(
            due_time(&daily, None, at("2026-07-01T00:00:00Z"), at("2026-07-01T08:00:00Z")),
            None
        );
        assert!(parse_time_zone("Mars/Olympus_Mons").is_err());
        assert!(parse_time_zone("Local").is_err());
    }
}
