//! The Job controller: pods created per `parallelism` and `completions`
//! (NonIndexed), failed pods retried with exponential back-off until
//! `backoffLimit` (under `restartPolicy: OnFailure` container restarts count),
//! `activeDeadlineSeconds`, `suspend` and resume, `ttlSecondsAfterFinished`,
//! and the status the real controller reports: `startTime`, `active`,
//! `ready`, `succeeded`, `failed`, `terminating`, `completionTime` and the
//! conditions `SuccessCriteriaMet`/`Complete` (`CompletionsReached`) or
//! `FailureTarget`/`Failed` (`BackoffLimitExceeded`, `DeadlineExceeded`),
//! with their events.
//!
//! `podFailurePolicy` rules (`FailJob`, `Ignore`, `Count` on exit codes and
//! pod conditions) decide what a failed pod means.
//!
//! Indexed Jobs give each pod its completion index (annotation, label,
//! `JOB_COMPLETION_INDEX`, hostname) and complete once every index has
//! succeeded (`completedIndexes`).
//!
//! Not simulated: successPolicy, the `FailIndex` action,
//! backoffLimitPerIndex, and pod tracking finalizers (succeeded and failed
//! are counted from the pods that still exist).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::event::{self, Source, Type};
use crate::resource;
use crate::store::{self, Store, WriteOptions, meta_str};
use crate::workload::{self, deleting, is_ready, owned, pod_from_template};

/// The Job controller's name in events.
const CONTROLLER: &str = "job-controller";
/// The real controller's cap on the pod failure back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(360);

pub(crate) fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn seconds(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// A Job condition (`lastProbeTime` and `lastTransitionTime`), keeping its
/// transition time while its status is unchanged.
fn condition(previous: &Value, kind: &str, status: bool, reason: &str, message: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let now = store::now();
    let same = previous["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind && c["status"] == status));
    if let Some(c) = same.filter(|c| c["reason"] == reason && c["message"] == message) {
        return c.clone();
    }
    let transition = same.map_or_else(|| json!(now), |c| c["lastTransitionTime"].clone());
    json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": transition,
    })
}

/// Whether a Job has finished, and how: `Some(true)` Complete, `Some(false)` Failed.
pub(crate) fn finished(job: &Value) -> Option<bool> {
    job["status"]["conditions"].as_array()?.iter().find_map(|c| {
        (c["status"] == "True")
            .then(|| match c["type"].as_str() {
                Some("Complete") => Some(true),
                Some("Failed") => Some(false),
                _ => None,
            })
            .flatten()
    })
}

/// When a finished Job finished.
pub(crate) fn finish_time(job: &Value) -> Option<DateTime<Utc>> {
    time(&job["status"]["completionTime"]).or_else(|| {
        job["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Failed" && c["status"] == "True")
            .and_then(|c| time(&c["lastTransitionTime"]))
    })
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

fn restarts(pod: &Value) -> i64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["restartCount"].as_i64())
        .sum()
}

/// When the pod's containers last terminated (for the failure back-off).
fn last_failure(pod: &Value) -> Option<DateTime<Utc>> {
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .filter_map(|c| {
            time(&c["state"]["terminated"]["finishedAt"]).or_else(|| time(&c["lastState"]["terminated"]["finishedAt"]))
        })
        .max()
}

fn delete_pod(store: &Store, job: &Value, pod: &Value) {
    if store
        .delete(
            resource::PODS,
            meta_str(pod, "namespace"),
            meta_str(pod, "name"),
            false,
            false,
        )
        .is_ok()
    {
        event::record(
            store,
            job,
            Type::Normal,
            "SuccessfulDelete",
            &format!("Deleted pod: {}", meta_str(pod, "name")),
            Source::controller(CONTROLLER),
        );
    }
}

fn write_status(store: &Store, job: &Value, status: Value) -> Option<Arc<Value>> {
    if job.get("status") == Some(&status) {
        return None;
    }
    store
        .modify(
            resource::JOBS,
            meta_str(job, "namespace"),
            meta_str(job, "name"),
            &WriteOptions::by(workload::MANAGER).status(),
            |cur| {
                let mut c = cur.clone();
                c["status"] = status;
                Ok(c)
            },
        )
        .ok()
}

/// One pass of the Job controller. `backoff` is the delay before a failed
/// pod is replaced (doubling per failure, capped at six minutes; the real
/// controller's base is 10 s). Returns when the controller next has
/// something due (a back-off, a deadline or a TTL).
pub(crate) fn reconcile(store: &Store, backoff: Duration) -> Option<Duration> {
    let now = Utc::now();
    let mut next: Option<chrono::Duration> = None;
    let mut wake_at = |at: DateTime<Utc>| {
        let d = (at - now).max(chrono::Duration::zero());
        next = Some(next.map_or(d, |n| n.min(d)));
    };
    for job in store.all(resource::JOBS) {
        if deleting(&job) {
            continue;
        }
        let (ns, name, uid) = (
            meta_str(&job, "namespace"),
            meta_str(&job, "name"),
            meta_str(&job, "uid"),
        );
        let spec = &job["spec"];
        if finished(&job).is_some() {
            if let (Some(ttl), Some(done)) = (spec["ttlSecondsAfterFinished"].as_i64(), finish_time(&job)) {
                let due = done + seconds(ttl);
                if due <= now {
                    // Background propagation: the garbage collector takes the pods.
                    let _ = store.delete(resource::JOBS, ns, name, false, false);
                } else {
                    wake_at(due);
                }
            }
            continue;
        }
        let pods = owned(store, resource::PODS, ns, uid);
        let active: Vec<&Arc<Value>> = pods
            .iter()
            .filter(|p| !deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
            .collect();
        let terminating = pods.iter().filter(|p| deleting(p)).count();
        let indexed = spec["completionMode"] == "Indexed";
        // Indexed: one completion per index, whatever the number of its pods.
        let done_indexes: std::collections::BTreeSet<i64> = pods
            .iter()
            .filter(|p| phase(p) == "Succeeded")
            .filter_map(|p| completion_index(p))
            .collect();
        let succeeded = if indexed {
            done_indexes.len() as i64
        } else {
            pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64
        };
        let on_failure = spec["template"]["spec"]["restartPolicy"] == "OnFailure";
        // podFailurePolicy: the first rule matching a failed pod decides
        // whether it fails the Job, is ignored (not counted) or counts.
        let verdicts: Vec<(&Arc<Value>, Option<Verdict>)> = pods
            .iter()
            .filter(|p| phase(p) == "Failed")
            .map(|p| (p, failure_policy_verdict(&spec["podFailurePolicy"], p)))
            .collect();
        let fail_job = verdicts.iter().find_map(|(_, v)| match v {
            Some(Verdict::FailJob(message)) => Some(message.clone()),
            _ => None,
        });
        let failed_pods = verdicts
            .iter()
            .filter(|(_, v)| !matches!(v, Some(Verdict::Ignore)))
            .count() as i64;
        let failed = failed_pods
            + if on_failure {
                pods.iter().map(|p| restarts(p)).sum()
            } else {
                0
            };
        let previous = &job["status"];
        let mut status = json!({ "ready": active.iter().filter(|p| is_ready(p)).count(), "terminating": terminating });
        status["uncountedTerminatedPods"] = json!({});
        if succeeded > 0 {
            status["succeeded"] = json!(succeeded);
        }
        if failed > 0 {
            status["failed"] = json!(failed);
        }
        if indexed && !done_indexes.is_empty() {
            status["completedIndexes"] = json!(index_ranges(&done_indexes));
        }
        let mut conditions: Vec<Value> = Vec::new();

        if spec["suspend"] == true {
            for p in &active {
                delete_pod(store, &job, p);
            }
            conditions.push(condition(previous, "Suspended", true, "JobSuspended", "Job suspended"));
            status["conditions"] = json!(conditions);
            let was_suspended = suspended(previous);
            if write_status(store, &job, status).is_some() && !was_suspended {
                event::record(
                    store,
                    &job,
                    Type::Normal,
                    "Suspended",
                    "Job suspended",
                    Source::controller(CONTROLLER),
                );
            }
            continue;
        }
        if suspended(previous) {
            conditions.push(condition(previous, "Suspended", false, "JobResumed", "Job resumed"));
            event::record(
                store,
                &job,
                Type::Normal,
                "Resumed",
                "Job resumed",
                Source::controller(CONTROLLER),
            );
        } else if let Some(c) = previous["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Suspended"))
        {
            conditions.push(c.clone());
        }
        // The clock of activeDeadlineSeconds restarts when a suspended Job resumes.
        let start = if suspended(previous) {
            now
        } else {
            time(&previous["startTime"]).unwrap_or(now)
        };
        status["startTime"] = json!(start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));

        let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
        let deadline = spec["activeDeadlineSeconds"].as_i64().map(|s| start + seconds(s));
        let failure = if let Some(message) = &fail_job {
            Some(("PodFailurePolicy", message.as_str()))
        } else if failed > backoff_limit {
            Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
        } else if deadline.is_some_and(|d| d <= now) {
            Some(("DeadlineExceeded", "Job was active longer than specified deadline"))
        } else {
            None
        };
        if let Some((reason, message)) = failure {
            for p in &active {
                delete_pod(store, &job, p);
            }
            conditions.push(condition(previous, "FailureTarget", true, reason, message));
            conditions.push(condition(previous, "Failed", true, reason, message));
            status["conditions"] = json!(conditions);
            if write_status(store, &job, status).is_some() {
                event::record(
                    store,
                    &job,
                    Type::Warning,
                    reason,
                    message,
                    Source::controller(CONTROLLER),
                );
            }
            continue;
        }
        if let Some(d) = deadline {
            wake_at(d);
        }

        let completions = spec["completions"].as_i64();
        let parallelism = spec["parallelism"].as_i64().unwrap_or(1);
        let complete = match completions {
            Some(c) => succeeded >= c,
            // A work queue: done once a pod succeeded and the others finished.
            None => succeeded > 0 && active.is_empty(),
        };
        if complete {
            let message = "Reached expected number of succeeded pods";
            conditions.push(condition(
                previous,
                "SuccessCriteriaMet",
                true,
                "CompletionsReached",
                message,
            ));
            conditions.push(condition(previous, "Complete", true, "CompletionsReached", message));
            status["conditions"] = json!(conditions);
            status["completionTime"] = json!(store::now());
            if write_status(store, &job, status).is_some() {
                event::record(
                    store,
                    &job,
                    Type::Normal,
                    "Completed",
                    "Job completed",
                    Source::controller(CONTROLLER),
                );
            }
            continue;
        }
        let wanted = match completions {
            Some(c) => parallelism.min(c - succeeded),
            None if succeeded > 0 => 0,
            None => parallelism,
        }
        .max(0);
        let have = active.len() as i64;
        if have > wanted {
            for p in active.iter().rev().take((have - wanted) as usize) {
                delete_pod(store, &job, p);
            }
        }
        let mut created = 0;
        if have < wanted {
            let failures = u32::try_from(failed).unwrap_or(u32::MAX);
            let last = pods.iter().filter_map(|p| last_failure(p)).max();
            let delay = if failures == 0 {
                Duration::ZERO
            } else {
                backoff
                    .saturating_mul(2_u32.saturating_pow(failures - 1))
                    .min(MAX_BACKOFF)
            };
            let due = last.map_or(now, |l| {
                l + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
            });
            if failed_pods == 0 || due <= now {
                let running: std::collections::BTreeSet<i64> =
                    active.iter().filter_map(|p| completion_index(p)).collect();
                let mut free =
                    (0..completions.unwrap_or(0)).filter(|i| !done_indexes.contains(i) && !running.contains(i));
                for _ in have..wanted {
                    let mut pod = pod_from_template(&job, &spec["template"], &[]);
                    pod["metadata"]["generateName"] = json!(format!("{name}-"));
                    if indexed {
                        let Some(index) = free.next() else { break };
                        index_pod(&mut pod, name, index);
                    }
                    match store.create(resource::PODS, ns, pod, &WriteOptions::by(workload::MANAGER)) {
                        Ok(p) => {
                            created += 1;
                            event::record(
                                store,
                                &job,
                                Type::Normal,
                                "SuccessfulCreate",
                                &format!("Created pod: {}", meta_str(&p, "name")),
                                Source::controller(CONTROLLER),
                            );
                        }
                        Err(e) => {
                            event::record(
                                store,
                                &job,
                                Type::Warning,
                                "FailedCreate",
                                &format!("Error creating: {e}"),
                                Source::controller(CONTROLLER),
                            );
                            break;
                        }
                    }
                }
            } else {
                wake_at(due);
            }
        }
        let active_now = (have.min(wanted) + created).max(0);
        if active_now > 0 {
            status["active"] = json!(active_now);
        }
        if !conditions.is_empty() {
            status["conditions"] = json!(conditions);
        }
        write_status(store, &job, status);
    }
    next.and_then(|d| d.to_std().ok())
}

/// The label and annotation carrying an Indexed Job pod's index.
const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

fn completion_index(pod: &Value) -> Option<i64> {
    pod["metadata"]["annotations"][COMPLETION_INDEX].as_str()?.parse().ok()
}

/// What the Job controller adds to an Indexed Job's pod for `index`: the
/// index as annotation, label and `JOB_COMPLETION_INDEX` in every
/// container's environment, the name `<job>-<index>-` and the hostname
/// `<job>-<index>`.
fn index_pod(pod: &mut Value, job: &str, index: i64) {
    pod["metadata"]["generateName"] = json!(format!("{job}-{index}-"));
    pod["metadata"]["annotations"][COMPLETION_INDEX] = json!(index.to_string());
    pod["metadata"]["labels"][COMPLETION_INDEX] = json!(index.to_string());
    if pod["spec"]["hostname"].as_str().is_none_or(str::is_empty) {
        pod["spec"]["hostname"] = json!(format!("{job}-{index}"));
    }
    for c in pod["spec"]["containers"].as_array_mut().into_iter().flatten() {
        if !c["env"].is_array() {
            c["env"] = json!([]);
        }
        if let Some(env) = c["env"].as_array_mut() {
            env.insert(0, json!({ "name": "JOB_COMPLETION_INDEX", "value": index.to_string() }));
        }
    }
}

/// Indexes as the status writes them: `0-2,4,6-7`.
fn index_ranges(indexes: &std::collections::BTreeSet<i64>) -> String {
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for &i in indexes {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == i => *end = i,
            _ => ranges.push((i, i)),
        }
    }
    ranges
        .iter()
        .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect::<Vec<_>>()
        .join(",")
}

/// What a `podFailurePolicy` rule makes of a failed pod.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// The Job fails at once, with this message.
    FailJob(String),
    /// The failure is not counted (towards `backoffLimit` nor `failed`).
    Ignore,
    /// The failure counts as without a policy.
    Count,
}

/// The verdict of the first rule of `policy` matching the failed `pod`:
/// `onExitCodes` (`In`/`NotIn` over the non-zero exit codes of its
/// containers, or of the named one) or `onPodConditions` (a condition of
/// that type and status). `None` when no rule matches.
fn failure_policy_verdict(policy: &Value, pod: &Value) -> Option<Verdict> {
    let terminated: Vec<(String, i64)> = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let code = c["state"]["terminated"]["exitCode"].as_i64()?;
            Some((c["name"].as_str().unwrap_or_default().to_string(), code))
        })
        .filter(|(_, code)| *code != 0)
        .collect();
    for (index, rule) in policy["rules"].as_array().into_iter().flatten().enumerate() {
        let action = rule["action"].as_str().unwrap_or_default();
        let by_exit = &rule["onExitCodes"];
        let matched_exit = by_exit.is_object().then(|| {
            let values: Vec<i64> = by_exit["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect();
            let wanted_in = by_exit["operator"] == "In";
            terminated.iter().find(|(name, code)| {
                by_exit["containerName"].as_str().is_none_or(|c| c == name) && values.contains(code) == wanted_in
            })
        });
        let matched = match matched_exit {
            Some(found) => found.map(|(c, code)| {
                format!(
                    "Container {c} for pod {}/{} failed with exit code {code} matching {action} rule at index {index}",
                    meta_str(pod, "namespace"),
                    meta_str(pod, "name"),
                )
            }),
            None => rule["onPodConditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|want| {
                    pod["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c["type"] == want["type"] && c["status"] == want["status"].as_str().unwrap_or("True")
                        })
                    })
                })
                .map(|want| {
                    format!(
                        "Pod {}/{} has condition {} matching {action} rule at index {index}",
                        meta_str(pod, "namespace"),
                        meta_str(pod, "name"),
                        want["type"].as_str().unwrap_or_default(),
                    )
                }),
        };
        if let Some(message) = matched {
            return Some(match action {
                "FailJob" => Verdict::FailJob(message),
                "Ignore" => Verdict::Ignore,
                _ => Verdict::Count,
            });
        }
    }
    None
}

fn suspended(status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Suspended" && c["status"] == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_finished_by_its_true_complete_or_failed_condition() {
        assert_eq!(finished(&json!({})), None);
        let c = |t: &str, s: &str| json!({ "status": { "conditions": [{ "type": t, "status": s }] } });
        assert_eq!(finished(&c("Complete", "True")), Some(true));
        assert_eq!(finished(&c("Failed", "True")), Some(false));
        assert_eq!(finished(&c("Complete", "False")), None);
        assert_eq!(finished(&c("Suspended", "True")), None);
    }
}
