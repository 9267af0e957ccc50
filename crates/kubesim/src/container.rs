//! What a simulated container does, by a deterministic rule a test can pick:
//!
//! - **Output.** The container's `command` + `args` are read as a shell
//!   would: `echo WORDS` (directly, or as a statement of `sh -c SCRIPT` /
//!   `bash -c SCRIPT`, statements split on newlines, `;`, `&&` and `||`)
//!   writes its words as one line; `printf FORMAT ARGS` writes the format
//!   with `%s`/`%d` filled in and `\n` as line breaks; `$NAME` and `${NAME}`
//!   expand to the container's literal `env` values (`$(...)` command
//!   substitution is not evaluated). Other programs write
//!   nothing. A container with neither command nor args (the image's own
//!   entrypoint, a server) writes a numbered `simulated log line` a second.
//! - **Outcome.** In a pod with `restartPolicy` `Never` or `OnFailure` (Job
//!   pods) the container runs for the pod's `kubesim.io/run-seconds`
//!   annotation (seconds, fractions allowed), else the sum of its script's
//!   `sleep N` statements, else 1 second, and exits with the pod's
//!   `kubesim.io/exit-code` annotation, else the script's `exit N` (or 1
//!   after a final `false`), else 0. With `restartPolicy: Always` it runs
//!   until deleted, unless that rule says it fails: then it crash-loops
//!   (terminated, `CrashLoopBackOff` for 10 s doubling to 5 min, restarted).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::event::{self, Source, Type};
use crate::resource;
use crate::store::{self, Store, WriteOptions, meta_str};

/// The pod annotation choosing every container's exit code. A pod with
/// `restartPolicy` `Never` or `OnFailure` (a Job's) runs its containers to
/// completion: for [`RUN_SECONDS_ANNOTATION`] seconds (else the sum of its
/// script's `sleep`s, else 1 s), exiting with this code (else the script's
/// `exit N`, else 0). Its log holds what its command's `echo`/`printf`
/// statements write (`sh -c` scripts included, `$VAR` expanded from `env`).
pub const EXIT_CODE_ANNOTATION: &str = "kubesim.io/exit-code";
/// The pod annotation choosing how long every container runs, in seconds
/// (fractions allowed); see [`EXIT_CODE_ANNOTATION`].
pub const RUN_SECONDS_ANNOTATION: &str = "kubesim.io/run-seconds";

/// What a container of a run-to-completion pod does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// The lines it writes to its log when it starts.
    pub output: Vec<String>,
    /// How long it runs.
    pub run_for: Duration,
    /// Its exit code.
    pub exit_code: i32,
}

/// Whether the pod's containers run to completion (a Job's pods) rather
/// than until they are stopped.
pub(crate) fn runs_to_completion(pod: &Value) -> bool {
    matches!(pod["spec"]["restartPolicy"].as_str(), Some("Never" | "OnFailure"))
}

/// Whether the container runs the image's entrypoint (no command, no args).
pub(crate) fn is_server(container: &Value) -> bool {
    argv(container).is_empty()
}

fn argv(container: &Value) -> Vec<String> {
    ["command", "args"]
        .iter()
        .flat_map(|f| container[*f].as_array().into_iter().flatten())
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

/// The outcome of `container` in `pod`, by the rule of this module.
pub(crate) fn outcome(pod: &Value, container: &Value) -> Outcome {
    let env: HashMap<String, String> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect();
    let args = argv(container);
    let program = args
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or_default();
    let statements: Vec<Vec<String>> = if matches!(program, "sh" | "bash" | "ash" | "dash" | "zsh") {
        let script = args
            .iter()
            .skip(1)
            .position(|a| a.starts_with('-') && a.contains('c'))
            .and_then(|i| args.get(i + 2));
        script.map_or_else(Vec::new, |s| {
            split_statements(s).iter().map(|st| words(st, &env)).collect()
        })
    } else if args.is_empty() {
        Vec::new()
    } else {
        let expanded = args.iter().map(|a| expand(a, &env)).collect();
        vec![expanded]
    };
    let mut output = Vec::new();
    let mut slept = 0.0_f64;
    let mut exit_code = 0;
    for (i, st) in statements.iter().enumerate() {
        let Some(cmd) = st.first() else { continue };
        let rest = &st[1..];
        match cmd.rsplit('/').next().unwrap_or(cmd) {
            "echo" => {
                let rest: Vec<&String> = rest
                    .iter()
                    .skip_while(|w| matches!(w.as_str(), "-n" | "-e" | "-E"))
                    .collect();
                output.push(rest.iter().map(|w| w.as_str()).collect::<Vec<_>>().join(" "));
            }
            "printf" => {
                if let Some((format, values)) = rest.split_first() {
                    output.extend(printf(format, values));
                }
            }
            "sleep" => slept += rest.first().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0),
            "exit" => {
                exit_code = rest.first().and_then(|s| s.parse().ok()).unwrap_or(0);
                break;
            }
            "false" if i + 1 == statements.len() => exit_code = 1,
            _ => {}
        }
    }
    let annotations = &pod["metadata"]["annotations"];
    let annotated = |key: &str| annotations[key].as_str().map(str::trim);
    if let Some(code) = annotated(EXIT_CODE_ANNOTATION).and_then(|c| c.parse().ok()) {
        exit_code = code;
    }
    let seconds = annotated(RUN_SECONDS_ANNOTATION)
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(if slept > 0.0 { slept } else { 1.0 });
    Outcome {
        output,
        run_for: Duration::from_secs_f64(seconds.clamp(0.0, 1e9)),
        exit_code,
    }
}

/// The kubelets' second half: ends the containers of running
/// run-to-completion pods when their time is up (the pod Succeeded, or
/// Failed; under `OnFailure` a failed container restarts instead, counting
/// `restartCount`). `started` remembers when each pod's containers (re)started.
/// Returns when the next container is due.
pub(crate) fn finish(store: &Store, started: &mut HashMap<String, Instant>) -> Option<Duration> {
    let now = Instant::now();
    let mut next: Option<Duration> = None;
    let mut alive = HashSet::new();
    for pod in store.all(resource::PODS) {
        if pod["status"]["phase"] != "Running"
            || !(runs_to_completion(&pod) || crash_loops(&pod))
            || pod["metadata"].get("deletionTimestamp").is_some()
        {
            continue;
        }
        let uid = meta_str(&pod, "uid").to_string();
        alive.insert(uid.clone());
        let since = *started.entry(uid.clone()).or_insert(now);
        let elapsed = now.duration_since(since);
        let on_failure = pod["spec"]["restartPolicy"] == "OnFailure";
        let always = !runs_to_completion(&pod);
        let mut status = pod["status"].clone();
        let mut changed = false;
        let mut restarted = Vec::new();
        let mut backing_off = Vec::new();
        let mut rerun = false;
        let specs = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let Some(statuses) = status["containerStatuses"].as_array_mut() else {
            continue;
        };
        for cs in statuses.iter_mut() {
            if cs["state"]["terminated"].is_object() {
                continue;
            }
            let Some(spec) = specs.iter().find(|c| c["name"] == cs["name"]) else {
                continue;
            };
            let o = outcome(&pod, spec);
            if always && o.exit_code == 0 {
                // Under `Always` only a failing container stops (and restarts).
                continue;
            }
            if cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
                let restarts = cs["restartCount"].as_i64().unwrap_or(0);
                let finished =
                    crate::job::time(&cs["lastState"]["terminated"]["finishedAt"]).unwrap_or_else(chrono::Utc::now);
                let due = finished + chrono::Duration::from_std(crash_back_off(restarts)).unwrap_or_default();
                let wait = (due - chrono::Utc::now()).to_std().unwrap_or_default();
                if wait.is_zero() {
                    changed = true;
                    rerun = true;
                    cs["state"] = json!({ "running": { "startedAt": store::now() } });
                    cs["ready"] = json!(true);
                    cs["started"] = json!(true);
                } else {
                    next = Some(next.map_or(wait, |n: Duration| n.min(wait)));
                }
                continue;
            }
            if elapsed < o.run_for {
                let wait = o.run_for - elapsed;
                next = Some(next.map_or(wait, |n: Duration| n.min(wait)));
                continue;
            }
            changed = true;
            let terminated = json!({
                "exitCode": o.exit_code,
                "reason": if o.exit_code == 0 { "Completed" } else { "Error" },
                "startedAt": cs["state"]["running"]["startedAt"],
                "finishedAt": store::now(),
                "containerID": cs["containerID"],
            });
            if o.exit_code != 0 && on_failure {
                cs["restartCount"] = json!(cs["restartCount"].as_i64().unwrap_or(0) + 1);
                cs["lastState"] = json!({ "terminated": terminated });
                cs["state"] = json!({ "running": { "startedAt": store::now() } });
                restarted.push(cs["name"].as_str().unwrap_or_default().to_string());
            } else if always {
                // The kubelet restarts it after a back-off that doubles per
                // restart (10 s up to 5 min), waiting in CrashLoopBackOff.
                let restarts = cs["restartCount"].as_i64().unwrap_or(0) + 1;
                let name = cs["name"].as_str().unwrap_or_default().to_string();
                cs["restartCount"] = json!(restarts);
                cs["lastState"] = json!({ "terminated": terminated });
                cs["state"] = json!({ "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": format!(
                        "back-off {} restarting failed container={name} pod={}_{}({uid})",
                        go_seconds(crash_back_off(restarts)),
                        meta_str(&pod, "name"),
                        meta_str(&pod, "namespace"),
                    ),
                } });
                cs["ready"] = json!(false);
                cs["started"] = json!(false);
                backing_off.push(name);
            } else {
                cs["state"] = json!({ "terminated": terminated });
                cs["ready"] = json!(false);
                cs["started"] = json!(false);
            }
        }
        if !changed {
            continue;
        }
        if !restarted.is_empty() || rerun {
            started.insert(uid.clone(), now);
        }
        let done: Vec<i64> = statuses
            .iter()
            .filter_map(|cs| cs["state"]["terminated"]["exitCode"].as_i64())
            .collect();
        if done.len() == statuses.len() {
            let succeeded = done.iter().all(|c| *c == 0);
            status["phase"] = json!(if succeeded { "Succeeded" } else { "Failed" });
            let reason = if succeeded { "PodCompleted" } else { "PodFailed" };
            for c in status["conditions"].as_array_mut().into_iter().flatten() {
                if matches!(c["type"].as_str(), Some("Ready" | "ContainersReady")) {
                    c["status"] = json!("False");
                    c["reason"] = json!(reason);
                    c["lastTransitionTime"] = json!(store::now());
                }
            }
        }
        if always {
            set_ready(&mut status);
        }
        let written = store.modify(
            resource::PODS,
            meta_str(&pod, "namespace"),
            meta_str(&pod, "name"),
            &WriteOptions::by("kubelet").status(),
            |cur| {
                let mut c = cur.clone();
                c["status"] = status;
                Ok(c)
            },
        );
        if let Ok(p) = written {
            let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
            for name in &backing_off {
                event::record_container(
                    store,
                    &p,
                    name,
                    Type::Warning,
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {name} in pod {}_{}({})",
                        meta_str(&p, "name"),
                        meta_str(&p, "namespace"),
                        meta_str(&p, "uid"),
                    ),
                    Source::kubelet(node),
                );
            }
            for name in &restarted {
                event::record_container(
                    store,
                    &p,
                    name,
                    Type::Warning,
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {name} in pod {}",
                        meta_str(&p, "name")
                    ),
                    Source::kubelet(node),
                );
            }
        }
    }
    started.retain(|uid, _| alive.contains(uid));
    next
}

/// Whether a `restartPolicy: Always` pod has a container whose simulated
/// run ends in failure (the `kubesim.io/exit-code` annotation, or the
/// script's `exit N` or final `false`): it crash-loops, as such a container
/// does on a real node. Other containers of such pods run until deleted.
fn crash_loops(pod: &Value) -> bool {
    pod["spec"]["restartPolicy"] == "Always"
        && pod["spec"]["containers"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| outcome(pod, c).exit_code != 0))
}

/// The kubelet's restart back-off after the `restarts`-th restart: 10 s,
/// doubled per restart, at most 5 minutes.
fn crash_back_off(restarts: i64) -> Duration {
    let doublings = u32::try_from(restarts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    Duration::from_secs(10u64.saturating_mul(1 << doublings)).min(Duration::from_secs(300))
}

/// Seconds as Go prints a whole-second duration (`10s`, `2m40s`, `5m0s`).
fn go_seconds(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// The pod's Ready and ContainersReady conditions from its containers'
/// readiness, as the kubelet reports a crashing container.
fn set_ready(status: &mut Value) {
    let ready = status["containerStatuses"]
        .as_array()
        .is_some_and(|cs| cs.iter().all(|c| c["ready"] == true));
    for c in status["conditions"].as_array_mut().into_iter().flatten() {
        if matches!(c["type"].as_str(), Some("Ready" | "ContainersReady")) {
            let want = if ready { "True" } else { "False" };
            if c["status"] != want {
                c["status"] = json!(want);
                c["lastTransitionTime"] = json!(store::now());
                if ready {
                    if let Some(m) = c.as_object_mut() {
                        m.remove("reason");
                    }
                } else {
                    c["reason"] = json!("ContainersNotReady");
                }
            }
        }
    }
}

/// How long a container's preStop hook runs: a `sleep` action's seconds,
/// or the `sleep N` statements of an `exec` command; 0 for HTTP and TCP hooks.
fn pre_stop(container: &Value) -> Duration {
    let hook = &container["lifecycle"]["preStop"];
    if let Some(s) = hook["sleep"]["seconds"].as_f64() {
        return Duration::from_secs_f64(s.max(0.0));
    }
    let command: Vec<String> = hook["exec"]["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let hooked = serde_json::json!({ "command": command });
    let pod = serde_json::json!({ "metadata": { "annotations": {} } });
    let o = outcome(&pod, &hooked);
    // `outcome` counts a default second when nothing sleeps; a hook without `sleep` is instant.
    let sleeps = command.iter().any(|a| a.contains("sleep"));
    if sleeps { o.run_for } else { Duration::ZERO }
}

/// The kubelets' part in graceful termination: for a pod marked for
/// deletion, `Killing` per container ("Stopping container c"), its preStop
/// hooks run, and then (at once, as the simulated processes exit on
/// SIGTERM, but no later than `deletionGracePeriodSeconds`) the pod is
/// removed. `stopping` remembers when each pod's termination began.
/// Returns when the next pod is due.
pub(crate) fn terminate(store: &Store, stopping: &mut HashMap<String, Instant>) -> Option<Duration> {
    let now = Instant::now();
    let mut next: Option<Duration> = None;
    let mut alive = HashSet::new();
    for pod in store.all(resource::PODS) {
        let grace = pod["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
        if pod["metadata"].get("deletionTimestamp").is_none() || grace <= 0 {
            continue;
        }
        let uid = meta_str(&pod, "uid").to_string();
        alive.insert(uid.clone());
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let since = *stopping.entry(uid).or_insert_with(|| {
            for c in &containers {
                let name = c["name"].as_str().unwrap_or_default();
                event::record_container(
                    store,
                    &pod,
                    name,
                    Type::Normal,
                    "Killing",
                    &format!("Stopping container {name}"),
                    Source::kubelet(node),
                );
            }
            now
        });
        let hooks = containers.iter().map(pre_stop).max().unwrap_or_default();
        let stop_after = hooks.min(Duration::from_secs(u64::try_from(grace).unwrap_or(0)));
        let elapsed = now.duration_since(since);
        if elapsed >= stop_after {
            let _ = store.delete_with_grace(
                resource::PODS,
                meta_str(&pod, "namespace"),
                meta_str(&pod, "name"),
                false,
                false,
                Some(0),
            );
        } else {
            let wait = stop_after - elapsed;
            next = Some(next.map_or(wait, |n: Duration| n.min(wait)));
        }
    }
    stopping.retain(|uid, _| alive.contains(uid));
    next
}

/// The log of a container that has started: what its command echoes, or
/// for a server 20 `simulated log line`s, and one more per second of
/// `elapsed` (how long the log has been followed).
pub(crate) fn log_lines(pod: &Value, container: &Value, elapsed: Duration) -> Vec<String> {
    if is_server(container) {
        let name = meta_str(pod, "name");
        let stamp = pod["status"]["startTime"].as_str().unwrap_or_default();
        let c = container["name"].as_str().unwrap_or_default();
        let count = 20 + elapsed.as_secs();
        (1..=count)
            .map(|i| format!("{stamp} INFO {name}/{c}: simulated log line {i}"))
            .collect()
    } else {
        outcome(pod, container).output
    }
}

/// How often a followed log is looked at for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// `kubectl logs -f`: the log so far (its last `tail` lines), then each new
/// line as the simulated container writes it; the stream ends when the
/// container has terminated or the pod is gone.
pub(crate) fn follow(
    store: Arc<Store>,
    ns: String,
    pod: String,
    container: String,
    tail: Option<usize>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> {
    let begun = Instant::now();
    futures::stream::unfold((0_usize, true), move |(sent, first)| {
        let store = store.clone();
        let (ns, pod, container) = (ns.clone(), pod.clone(), container.clone());
        async move {
            loop {
                if !first {
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
                let p = store.get(resource::PODS, &ns, &pod).ok()?;
                let spec = p["spec"]["containers"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
                    .cloned()
                    .unwrap_or_default();
                let lines = log_lines(&p, &spec, begun.elapsed());
                let skip = if first {
                    tail.map_or(0, |t| lines.len().saturating_sub(t))
                } else {
                    sent
                };
                let ended = matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                    || p["status"]["containerStatuses"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["name"] == container.as_str() && c["state"]["terminated"].is_object())
                    });
                if lines.len() > skip {
                    let text: String = lines[skip..].iter().map(|l| format!("{l}\n")).collect();
                    return Some((Ok(bytes::Bytes::from(text)), (lines.len(), false)));
                }
                if ended {
                    return None;
                }
                if first {
                    return Some((Ok(bytes::Bytes::new()), (lines.len(), false)));
                }
            }
        }
    })
}

/// Splits a script into statements on newlines, `;`, `&&` and `||` outside quotes.
fn split_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), '\\') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '\n' | ';') => out.push(std::mem::take(&mut cur)),
            (None, '&' | '|') if chars.peek() == Some(&c) => {
                chars.next();
                out.push(std::mem::take(&mut cur));
            }
            (None, c) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Splits a statement into words as the shell does: quotes, backslashes and
/// `$NAME` expansion (not inside single quotes).
fn words(statement: &str, env: &HashMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = statement.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (Some(_) | None, '$') => cur.push_str(&variable(&mut chars, env)),
            (Some(_), '\\') => match chars.next() {
                Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => cur.push('\\'),
            },
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                in_word = false;
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
        if !cur.is_empty() {
            in_word = true;
        }
    }
    if in_word || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn variable(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, env: &HashMap<String, String>) -> String {
    let mut name = String::new();
    if chars.peek() == Some(&'{') {
        chars.next();
        for c in chars.by_ref() {
            if c == '}' {
                break;
            }
            name.push(c);
        }
    } else {
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if name.is_empty() {
            return "$".into();
        }
    }
    env.get(&name).cloned().unwrap_or_default()
}

/// `$(NAME)` in command and args, as the kubelet expands it from `env`.
fn expand(arg: &str, env: &HashMap<String, String>) -> String {
    let mut out = arg.to_string();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

/// printf: the format is reused while arguments are left, as the shell's is.
fn printf(format: &str, values: &[String]) -> Vec<String> {
    let mut text = String::new();
    let mut values = values.iter().peekable();
    loop {
        printf_once(format, &mut values, &mut text);
        if values.peek().is_none() || !format.contains('%') {
            break;
        }
    }
    let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

fn printf_once<'a>(format: &str, values: &mut impl Iterator<Item = &'a String>, text: &mut String) {
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('s' | 'd') => text.push_str(values.next().map_or("", String::as_str)),
                Some('%') => text.push('%'),
                Some(o) => {
                    text.push('%');
                    text.push(o);
                }
                None => text.push('%'),
            },
            '\\' => match chars.next() {
                Some('n') => text.push('\n'),
                Some('t') => text.push('\t'),
                Some(o) => text.push(o),
                None => text.push('\\'),
            },
            c => text.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(annotations: Value, command: Value) -> (Value, Value) {
        let container = json!({ "name": "c", "command": command, "env": [{ "name": "WHO", "value": "kubesim" }] });
        let pod = json!({
            "metadata": { "annotations": annotations },
            "spec": { "restartPolicy": "Never", "containers": [container.clone()] },
        });
        (pod, container)
    }

    #[test]
    fn a_shell_script_echoes_its_lines_and_sleeps_and_exits() {
        let (p, c) = pod(
            json!({}),
            json!([
                "sh",
                "-c",
                "echo \"hello $WHO\"; sleep 2 && printf '%s done\\n' step; exit 3"
            ]),
        );
        let o = outcome(&p, &c);
        assert_eq!(o.output, vec!["hello kubesim", "step done"]);
        assert_eq!(o.run_for, Duration::from_secs(2));
        assert_eq!(o.exit_code, 3);
    }

    #[test]
    fn echo_as_the_program_writes_its_arguments_and_annotations_win() {
        let (p, c) = pod(
            json!({ EXIT_CODE_ANNOTATION: "2", RUN_SECONDS_ANNOTATION: "0.5" }),
            json!(["echo", "hi", "$(WHO)"]),
        );
        let o = outcome(&p, &c);
        assert_eq!(o.output, vec!["hi kubesim"]);
        assert_eq!((o.run_for, o.exit_code), (Duration::from_millis(500), 2));
    }

    #[test]
    fn by_default_a_container_succeeds_after_one_second_without_output() {
        let (p, c) = pod(json!({}), json!(["/app/run"]));
        assert_eq!(
            outcome(&p, &c),
            Outcome {
                output: vec![],
                run_for: Duration::from_secs(1),
                exit_code: 0
            }
        );
    }

    #[test]
    fn single_quotes_keep_dollars_and_separators() {
        let env = HashMap::from([("X".to_string(), "1".to_string())]);
        assert_eq!(words("echo '$X; y' \"$X\"", &env), vec!["echo", "$X; y", "1"]);
        assert_eq!(split_statements("echo 'a;b'; echo c"), vec!["echo 'a;b'", "echo c"]);
    }
}
