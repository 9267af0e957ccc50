//! Pipeline definitions: the YAML document a tenant stores in the platform or
//! keeps in its repository as `.paas/pipeline.yaml`. Parsing checks the whole
//! document once and names the failing path (`stages[2].steps[0].image`), so
//! a run never discovers a malformed step half-way through.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kernel::{Error, Result};
use serde::{Deserialize, Serialize};

/// Where the repository keeps its pipeline.
pub const REPOSITORY_FILE: &str = ".paas/pipeline.yaml";
/// The largest definition, in bytes: a pipeline is a page of YAML, not a
/// data file, and the limit keeps a hostile repository from filling memory.
pub const MAX_DOCUMENT: usize = 256 * 1024;
/// A step's time limit when it names none: long enough for a build, short
/// enough that a hung command frees its runner the same hour.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The longest time limit a step may ask for.
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// How long an approval waits when it names no timeout.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// How many times a step may be retried after its runner died.
pub const MAX_RETRIES: u32 = 5;
/// Most stages and steps: enough for any real flow, and a bound for the UI.
pub const MAX_STAGES: usize = 32;
/// Most steps in one stage.
pub const MAX_STEPS: usize = 64;

/// The environments a pipeline deploys through, in promotion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Continuous integration (`develop`) and feature branches.
    Dev,
    /// Quality assurance.
    Qa,
    /// Release candidates.
    Staging,
    /// Production: four-eyes approvals and the security gate apply.
    Production,
}

impl Environment {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Qa => "qa",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }

    /// The environment of apps an application of this one is made in:
    /// production keeps apps' production rules (approval, admission); the
    /// others are apps' `test`.
    pub fn apps_environment(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Dev | Self::Qa | Self::Staging => "test",
        }
    }
}

/// What an approval does when nobody decided in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// The step, and so the run, fails.
    #[default]
    Fail,
    /// The run goes on as if approved (recorded as timed out).
    Continue,
}

/// Who may approve, and how many must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// User names allowed to approve.
    pub users: Vec<String>,
    /// Groups whose members may approve.
    pub groups: Vec<String>,
    /// Distinct approvers needed.
    pub required: u32,
    /// What happens when the step's `timeout` passes without enough approvals.
    pub on_timeout: OnTimeout,
    /// Four-eyes: whoever started the run may not approve it, and at least two
    /// people must. Always on in production.
    pub four_eyes: bool,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Runs commands in the workspace.
    Run {
        /// Shell commands, run in order; the first failing one fails the step.
        commands: Vec<String>,
    },
    /// Runs commands, then collects JUnit XML reports: failures fail the step.
    Test {
        /// Shell commands.
        commands: Vec<String>,
        /// Report files (relative to the workspace) to collect.
        reports: Vec<String>,
    },
    /// A gate people pass.
    Approval(Approval),
    /// A release of the application into an environment, through apps.
    Deploy {
        /// Target environment.
        environment: Environment,
    },
    /// A Containerfile built and pushed to the tenant's image repository,
    /// tagged with the run's version.
    BuildImage {
        /// The Containerfile, relative to the workspace.
        containerfile: String,
        /// The repository in the image catalog, `<tenant>/<project>/<name>`
        /// (the catalog grants a run nothing in another tenant's).
        repository: String,
    },
    /// The image catalog's scanner as a gate.
    SecurityScan {
        /// Highest severity that still passes.
        max_severity: String,
    },
    /// Moves the image and release to the next environment.
    Promote {
        /// Target environment.
        to: Environment,
    },
}

impl Action {
    /// The kind as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Run { .. } => "run",
            Self::Test { .. } => "test",
            Self::Approval(_) => "approval",
            Self::Deploy { .. } => "deploy",
            Self::BuildImage { .. } => "build-image",
            Self::SecurityScan { .. } => "security-scan",
            Self::Promote { .. } => "promote",
        }
    }

    /// Whether a runner executes it (else devops itself does).
    pub fn on_runner(&self) -> bool {
        matches!(self, Self::Run { .. } | Self::Test { .. } | Self::BuildImage { .. })
    }
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// DNS-label name, unique in its stage.
    pub name: String,
    /// Container image the commands run in, when the executor supports one.
    pub image: Option<String>,
    /// Extra environment (the rest is clean).
    pub env: BTreeMap<String, String>,
    /// Time limit (of an approval: how long it waits for decisions).
    #[serde(with = "seconds")]
    pub timeout: Duration,
    /// Retries when the runner executing it dies.
    pub retries: u32,
    /// What it does.
    #[serde(flatten)]
    pub action: Action,
}

/// Which refs a stage runs for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct When {
    /// Branch patterns (`main`, `feature-*`); empty with `tags` empty: every ref.
    pub branches: Vec<String>,
    /// Tag patterns (`v*`).
    pub tags: Vec<String>,
}

impl When {
    /// Whether the stage runs for `git_ref`.
    pub fn admits(&self, git_ref: &GitRef) -> bool {
        if self.branches.is_empty() && self.tags.is_empty() {
            return true;
        }
        match git_ref {
            GitRef::Branch(b) => self.branches.iter().any(|p| glob(p, b)),
            GitRef::Tag(t) => self.tags.iter().any(|p| glob(p, t)),
        }
    }
}

/// One stage: steps run in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// DNS-label name, unique in the pipeline.
    pub name: String,
    /// Environment the stage acts on, if any.
    pub environment: Option<Environment>,
    /// Which refs it runs for.
    pub when: When,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// The template parameter that takes the run's image when a target names none.
pub const DEFAULT_IMAGE_PARAMETER: &str = "image";

/// Where an environment's releases go: one application of the tenant, which
/// lives in the partitions and clusters its placement names (see
/// `docs/pipelines.md`, "Environments").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The application: its id, or its name in the tenant.
    pub application: String,
    /// The template parameter given the run's image, pinned by digest.
    pub image_parameter: String,
}

/// A checked pipeline definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// Stages, in order.
    pub stages: Vec<Stage>,
    /// Cron schedules (five fields, UTC) that start runs of `schedule_branch`.
    pub schedules: Vec<String>,
    /// The branch scheduled runs build.
    pub schedule_branch: String,
    /// The application each environment deploys to (runs planned before
    /// environments existed stored none).
    #[serde(default)]
    pub environments: BTreeMap<Environment, Target>,
}

impl Definition {
    /// Parses and checks a YAML document. Errors name the path of the wrong
    /// field under `field` (`definition.stages[2].steps[0].image`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first wrong field.
    pub fn parse(field: &str, yaml: &str) -> Result<Self> {
        if yaml.len() > MAX_DOCUMENT {
            return Err(Error::invalid(field, format!("must be at most {MAX_DOCUMENT} bytes")));
        }
        let value: serde_json::Value =
            serde_saphyr::from_str(yaml).map_err(|e| Error::invalid(field, format!("is not a YAML document: {e}")))?;
        let raw: RawDefinition = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                field.to_string()
            } else {
                format!("{field}.{path}")
            };
            Error::invalid(at, e.into_inner().to_string())
        })?;
        raw.check(field)
    }

    /// The stages that run for `git_ref`.
    pub fn stages_for<'a>(&'a self, git_ref: &'a GitRef) -> impl Iterator<Item = &'a Stage> + 'a {
        self.stages.iter().filter(move |s| s.when.admits(git_ref))
    }
}

/// A Git ref a run builds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GitRef {
    /// `refs/heads/<name>`.
    Branch(String),
    /// `refs/tags/<name>`.
    Tag(String),
}

impl GitRef {
    /// Parses `refs/heads/x`, `refs/tags/x` or a bare branch name.
    ///
    /// # Errors
    /// An empty name, or one Git refuses (`..`, spaces, control characters).
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let (tag, name) = if let Some(t) = raw.strip_prefix("refs/tags/") {
            (true, t)
        } else {
            (false, raw.strip_prefix("refs/heads/").unwrap_or(raw))
        };
        let bad = name.is_empty()
            || name.len() > 255
            || name.contains("..")
            || name.starts_with('-')
            || name.starts_with('/')
            || name.ends_with('/')
            || name.ends_with(".lock")
            || name.chars().any(|c| c.is_control() || " ~^:?*[\\".contains(c));
        if bad {
            return Err(Error::invalid(field, "is not a Git branch or tag name"));
        }
        Ok(if tag {
            Self::Tag(name.into())
        } else {
            Self::Branch(name.into())
        })
    }

    /// The short name.
    pub fn name(&self) -> &str {
        match self {
            Self::Branch(n) | Self::Tag(n) => n,
        }
    }

    /// The full ref (`refs/heads/main`).
    pub fn full(&self) -> String {
        match self {
            Self::Branch(n) => format!("refs/heads/{n}"),
            Self::Tag(n) => format!("refs/tags/{n}"),
        }
    }

    /// The delivery flow the house branch rules give this ref.
    pub fn flow(&self) -> Flow {
        match self {
            Self::Tag(t) if t.starts_with('v') => Flow::Production,
            Self::Tag(_) => Flow::Other,
            Self::Branch(b) if b == "develop" => Flow::Integration,
            Self::Branch(b) => match b.strip_prefix("feature-") {
                Some(f) if !f.is_empty() => Flow::Feature(f.to_string()),
                _ if b.starts_with("release-") => Flow::ReleaseCandidate,
                _ => Flow::Other,
            },
        }
    }
}

/// The branch rules: which environment a ref's builds go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// `develop`: the CI environment.
    Integration,
    /// `feature-<name>`: an environment of its own.
    Feature(String),
    /// `release-*`: a release candidate for staging.
    ReleaseCandidate,
    /// Tags `v*`: the production path.
    Production,
    /// Anything else: build and test only.
    Other,
}

impl Flow {
    /// The environment builds of this flow deploy to.
    pub fn environment(&self) -> Option<Environment> {
        match self {
            Self::Integration | Self::Feature(_) => Some(Environment::Dev),
            Self::ReleaseCandidate => Some(Environment::Staging),
            Self::Production => Some(Environment::Production),
            Self::Other => None,
        }
    }
}

/// The version a build carries: the latest `vMAJOR.MINOR.PATCH` tag as is for
/// a build of that tag, else its next patch with `-build.N` (`1.4.1-build.17`),
/// so every build sorts after the release it starts from and before the next.
/// `0.0.0` stands in when there is no tag yet.
pub fn build_version(latest_tag: Option<&str>, git_ref: &GitRef, build: u64) -> String {
    let parse = |t: &str| semver::Version::parse(t.strip_prefix('v').unwrap_or(t)).ok();
    if let GitRef::Tag(t) = git_ref
        && let Some(v) = parse(t)
    {
        return v.to_string();
    }
    match latest_tag.and_then(parse) {
        Some(v) => format!("{}.{}.{}-build.{build}", v.major, v.minor, v.patch + 1),
        None => format!("0.0.0-build.{build}"),
    }
}

/// The highest semantic-version tag among `tags` (`v1.2.3` or `1.2.3`).
pub fn latest_version_tag<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    tags.into_iter()
        .filter_map(|t| {
            semver::Version::parse(t.strip_prefix('v').unwrap_or(t))
                .ok()
                .map(|v| (v, t))
        })
        .filter(|(v, _)| v.pre.is_empty())
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, t)| t)
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// A duration as people write it: `90s`, `10m`, `2h`, `1d`, or seconds.
fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (n, unit) = raw.split_at(split);
    let n: u64 = n.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(scale).map(Duration::from_secs)
}

/// Durations stored as whole seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// The document as written, before the checks across fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    stages: Vec<RawStage>,
    #[serde(default)]
    schedules: Vec<String>,
    #[serde(default)]
    schedule_branch: Option<String>,
    #[serde(default)]
    environments: BTreeMap<Environment, RawTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    application: String,
    #[serde(default)]
    image_parameter: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: String,
    #[serde(default)]
    environment: Option<Environment>,
    #[serde(default)]
    when: Option<RawWhen>,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    #[serde(default)]
    branches: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RawKind {
    Run,
    Test,
    Approval,
    Deploy,
    BuildImage,
    SecurityScan,
    Promote,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    kind: RawKind,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retries: u32,
    #[serde(default)]
    commands: Vec<String>,
    #[serde(default)]
    reports: Vec<String>,
    #[serde(default)]
    approvers: Option<RawApprovers>,
    #[serde(default)]
    required: Option<u32>,
    #[serde(default)]
    on_timeout: Option<OnTimeout>,
    #[serde(default)]
    four_eyes: Option<bool>,
    #[serde(default)]
    environment: Option<Environment>,
    #[serde(default)]
    containerfile: Option<String>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    max_severity: Option<String>,
    #[serde(default)]
    to: Option<Environment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprovers {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

fn label(field: &str, raw: &str) -> Result<String> {
    kernel::name::DnsLabel::parse(field, raw).map(|l| l.as_str().to_string())
}

/// A path inside the workspace: relative, no `..`, no NUL.
fn workspace_path(field: &str, raw: &str) -> Result<String> {
    let bad = raw.is_empty() || raw.starts_with('/') || raw.contains('\0') || raw.split('/').any(|part| part == "..");
    if bad {
        return Err(Error::invalid(field, "must be a relative path inside the workspace"));
    }
    Ok(raw.to_string())
}

/// An image reference: `host/path:tag`, `path@sha256:...`; no spaces or
/// control characters, lower-case repository.
fn image_ref(field: &str, raw: &str) -> Result<String> {
    let name = raw.split(['@']).next().unwrap_or(raw);
    let repo = match name.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => name,
    };
    let ok = !raw.is_empty()
        && raw.len() <= 512
        && !repo.is_empty()
        && repo
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c))
        && !raw.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Error::invalid(
            field,
            "is not an image reference (registry/repository:tag)",
        ))
    }
}

/// A repository of the image catalog: `<tenant>/<project>/<name>[/...]`,
/// each component lower-case letters and digits joined by `.`, `_` or `-`.
fn catalog_repository(field: &str, raw: &str) -> Result<String> {
    let parts: Vec<&str> = raw.split('/').collect();
    let component = |p: &str| {
        let b = p.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && b.first().is_some_and(alnum)
            && b.last().is_some_and(alnum)
            && b.iter().all(|c| alnum(c) || b"._-".contains(c))
    };
    if parts.len() < 3 || raw.len() > 255 || !parts.iter().all(|p| component(p)) {
        return Err(Error::invalid(
            field,
            "must be <tenant>/<project>/<name> in lower-case letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(raw.to_string())
}

fn env_name(field: &str, raw: &str) -> Result<()> {
    let mut chars = raw.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, "is not an environment variable name"))
    }
}

fn pattern(field: &str, raw: &str) -> Result<String> {
    let bad = raw.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control() || c == ':');
    if bad {
        return Err(Error::invalid(field, "is not a branch or tag pattern"));
    }
    Ok(raw.to_string())
}

/// A cron schedule as `croner` reads five fields (or `@daily`...).
pub fn parse_schedule(field: &str, raw: &str) -> Result<croner::Cron> {
    use croner::parser::{CronParser, Seconds};
    let fields = raw.split_whitespace().count();
    if !raw.trim_start().starts_with('@') && fields != 5 {
        return Err(Error::invalid(field, format!("must have 5 fields, found {fields}")));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(raw)
        .map_err(|e| Error::invalid(field, e.to_string()))
}

impl RawDefinition {
    fn check(self, field: &str) -> Result<Definition> {
        let at = |path: String| format!("{field}.{path}");
        if self.stages.is_empty() {
            return Err(Error::invalid(at("stages".into()), "must name at least one stage"));
        }
        if self.stages.len() > MAX_STAGES {
            return Err(Error::invalid(
                at("stages".into()),
                format!("must hold at most {MAX_STAGES}"),
            ));
        }
        let mut names = BTreeSet::new();
        let mut stages = Vec::with_capacity(self.stages.len());
        for (i, raw) in self.stages.into_iter().enumerate() {
            let here = format!("stages[{i}]");
            let name = label(&at(format!("{here}.name")), &raw.name)?;
            if !names.insert(name.clone()) {
                return Err(Error::invalid(
                    at(format!("{here}.name")),
                    "repeats another stage's name",
                ));
            }
            stages.push(raw.check(&at(here), name)?);
        }
        let mut schedules = Vec::with_capacity(self.schedules.len());
        for (i, s) in self.schedules.into_iter().enumerate() {
            parse_schedule(&at(format!("schedules[{i}]")), &s)?;
            schedules.push(s);
        }
        let schedule_branch = match self.schedule_branch {
            Some(b) => match GitRef::parse(&at("schedule_branch".into()), &b)? {
                GitRef::Branch(b) => b,
                GitRef::Tag(_) => return Err(Error::invalid(at("schedule_branch".into()), "must be a branch")),
            },
            None => "main".into(),
        };
        let mut environments = BTreeMap::new();
        for (environment, raw) in self.environments {
            let here = format!("environments.{}", environment.as_str());
            environments.insert(environment, raw.check(&at(here))?);
        }
        for (i, stage) in stages.iter().enumerate() {
            for (j, step) in stage.steps.iter().enumerate() {
                let (key, environment) = match &step.action {
                    Action::Deploy { environment } => ("environment", *environment),
                    Action::Promote { to } => ("to", *to),
                    _ => continue,
                };
                if !environments.contains_key(&environment) {
                    return Err(Error::invalid(
                        at(format!("stages[{i}].steps[{j}].{key}")),
                        format!(
                            "{} has no application: name one under environments.{}.application",
                            environment.as_str(),
                            environment.as_str()
                        ),
                    ));
                }
            }
        }
        Ok(Definition {
            stages,
            schedules,
            schedule_branch,
            environments,
        })
    }
}

impl RawTarget {
    fn check(self, here: &str) -> Result<Target> {
        let application = self.application.trim();
        let is_id = uuid::Uuid::parse_str(application).is_ok();
        if !is_id {
            label(&format!("{here}.application"), application)?;
        }
        let image_parameter = self
            .image_parameter
            .unwrap_or_else(|| DEFAULT_IMAGE_PARAMETER.to_string());
        let ok = !image_parameter.is_empty()
            && image_parameter.len() <= 63
            && image_parameter
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(Error::invalid(
                format!("{here}.image_parameter"),
                "must be a template parameter name (letters, digits, '_' and '-')",
            ));
        }
        Ok(Target {
            application: application.to_string(),
            image_parameter,
        })
    }
}

impl RawStage {
    fn check(self, here: &str, name: String) -> Result<Stage> {
        let when = match self.when {
            Some(w) => When {
                branches: w
                    .branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| pattern(&format!("{here}.when.branches[{i}]"), b))
                    .collect::<Result<_>>()?,
                tags: w
                    .tags
                    .iter()
                    .enumerate()
                    .map(|(i, t)| pattern(&format!("{here}.when.tags[{i}]"), t))
                    .collect::<Result<_>>()?,
            },
            None => When::default(),
        };
        if self.steps.is_empty() {
            return Err(Error::invalid(format!("{here}.steps"), "must name at least one step"));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(Error::invalid(
                format!("{here}.steps"),
                format!("must hold at most {MAX_STEPS}"),
            ));
        }
        let mut names = BTreeSet::new();
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, raw) in self.steps.into_iter().enumerate() {
            let at = format!("{here}.steps[{i}]");
            let name = label(&format!("{at}.name"), &raw.name)?;
            if !names.insert(name.clone()) {
                return Err(Error::invalid(format!("{at}.name"), "repeats another step's name"));
            }
            steps.push(raw.check(&at, name, self.environment)?);
        }
        Ok(Stage {
            name,
            environment: self.environment,
            when,
            steps,
        })
    }
}

impl RawStep {
    fn check(self, at: &str, name: String, environment: Option<Environment>) -> Result<Step> {
        let f = |k: &str| format!("{at}.{k}");
        let only = |present: bool, key: &str, kinds: &str| {
            if present {
                Err(Error::invalid(f(key), format!("applies only to steps of kind {kinds}")))
            } else {
                Ok(())
            }
        };
        let commands = |list: Vec<String>| -> Result<Vec<String>> {
            if list.is_empty() {
                return Err(Error::invalid(f("commands"), "must name at least one command"));
            }
            for (i, c) in list.iter().enumerate() {
                if c.trim().is_empty() || c.contains('\0') {
                    return Err(Error::invalid(
                        f(&format!("commands[{i}]")),
                        "must be a non-empty command",
                    ));
                }
            }
            Ok(list)
        };
        let kind = self.kind;
        let runs = matches!(kind, RawKind::Run | RawKind::Test);
        only(!runs && !self.commands.is_empty(), "commands", "run or test")?;
        only(kind != RawKind::Test && !self.reports.is_empty(), "reports", "test")?;
        let approval = kind == RawKind::Approval;
        only(!approval && self.approvers.is_some(), "approvers", "approval")?;
        only(!approval && self.required.is_some(), "required", "approval")?;
        only(!approval && self.on_timeout.is_some(), "on_timeout", "approval")?;
        only(!approval && self.four_eyes.is_some(), "four_eyes", "approval")?;
        only(
            kind != RawKind::Deploy && self.environment.is_some(),
            "environment",
            "deploy",
        )?;
        only(kind != RawKind::Promote && self.to.is_some(), "to", "promote")?;
        only(
            kind != RawKind::SecurityScan && self.max_severity.is_some(),
            "max_severity",
            "security-scan",
        )?;
        let image_kinds = matches!(kind, RawKind::Run | RawKind::Test | RawKind::BuildImage);
        only(
            !image_kinds && self.image.is_some(),
            "image",
            "run, test or build-image",
        )?;
        let image = self.image.as_deref().map(|i| image_ref(&f("image"), i)).transpose()?;
        for key in self.env.keys() {
            env_name(&f(&format!("env.{key}")), key)?;
        }
        if self.retries > MAX_RETRIES {
            return Err(Error::invalid(f("retries"), format!("must be at most {MAX_RETRIES}")));
        }
        let default_timeout = if approval {
            DEFAULT_APPROVAL_TIMEOUT
        } else {
            DEFAULT_STEP_TIMEOUT
        };
        let timeout = match self.timeout.as_deref() {
            None => default_timeout,
            Some(t) => parse_duration(t)
                .filter(|d| !d.is_zero() && (approval || *d <= MAX_STEP_TIMEOUT))
                .ok_or_else(|| Error::invalid(f("timeout"), "must be a positive duration like 90s, 10m or 2h"))?,
        };
        let action = match kind {
            RawKind::Run => Action::Run {
                commands: commands(self.commands)?,
            },
            RawKind::Test => {
                if self.reports.is_empty() {
                    return Err(Error::invalid(f("reports"), "must name at least one JUnit XML report"));
                }
                let reports = self
                    .reports
                    .iter()
                    .enumerate()
                    .map(|(i, r)| workspace_path(&f(&format!("reports[{i}]")), r))
                    .collect::<Result<_>>()?;
                Action::Test {
                    commands: commands(self.commands)?,
                    reports,
                }
            }
            RawKind::Approval => {
                let approvers = self
                    .approvers
                    .ok_or_else(|| Error::invalid(f("approvers"), "must name users or groups"))?;
                if approvers.users.is_empty() && approvers.groups.is_empty() {
                    return Err(Error::invalid(f("approvers"), "must name users or groups"));
                }
                for (i, u) in approvers.users.iter().enumerate() {
                    if u.trim().is_empty() || u.len() > 256 {
                        return Err(Error::invalid(
                            f(&format!("approvers.users[{i}]")),
                            "must be a user name",
                        ));
                    }
                }
                for (i, g) in approvers.groups.iter().enumerate() {
                    if g.trim().is_empty() || g.len() > 256 {
                        return Err(Error::invalid(
                            f(&format!("approvers.groups[{i}]")),
                            "must be a group name",
                        ));
                    }
                }
                let production = environment == Some(Environment::Production);
                let four_eyes = self.four_eyes.unwrap_or(production);
                if production && !four_eyes {
                    return Err(Error::invalid(f("four_eyes"), "cannot be turned off in production"));
                }
                let required = self.required.unwrap_or(if four_eyes { 2 } else { 1 });
                if required == 0 || required > 16 {
                    return Err(Error::invalid(f("required"), "must be between 1 and 16"));
                }
                if four_eyes && required < 2 {
                    return Err(Error::invalid(
                        f("required"),
                        "must be at least 2 with four-eyes approval",
                    ));
                }
                Action::Approval(Approval {
                    users: approvers.users,
                    groups: approvers.groups,
                    required,
                    on_timeout: self.on_timeout.unwrap_or_default(),
                    four_eyes,
                })
            }
            RawKind::Deploy => Action::Deploy {
                environment: self
                    .environment
                    .or(environment)
                    .ok_or_else(|| Error::invalid(f("environment"), "is required (or set on the stage)"))?,
            },
            RawKind::BuildImage => Action::BuildImage {
                containerfile: workspace_path(
                    &f("containerfile"),
                    self.containerfile.as_deref().unwrap_or("Containerfile"),
                )?,
                repository: catalog_repository(
                    &f("repository"),
                    self.repository
                        .as_deref()
                        .ok_or_else(|| Error::invalid(f("repository"), "is required"))?,
                )?,
            },
            RawKind::SecurityScan => {
                let s = self.max_severity.unwrap_or_else(|| "medium".into());
                if !matches!(s.as_str(), "none" | "low" | "medium" | "high" | "critical") {
                    return Err(Error::invalid(
                        f("max_severity"),
                        "must be one of none, low, medium, high, critical",
                    ));
                }
                Action::SecurityScan { max_severity: s }
            }
            RawKind::Promote => Action::Promote {
                to: self.to.ok_or_else(|| Error::invalid(f("to"), "is required"))?,
            },
        };
        Ok(Step {
            name,
            image,
            env: self.env,
            timeout,
            retries: self.retries,
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r"
stages:
  - name: build
    steps:
      - name: compile
        kind: run
        image: docker.io/library/rust:1
        commands: [make]
      - name: unit
        kind: test
        commands: [make test]
        reports: [reports/junit.xml]
        timeout: 10m
        retries: 1
  - name: production
    environment: production
    when:
      tags: ['v*']
    steps:
      - name: gate
        kind: approval
        approvers: {users: [alice], groups: [release-managers]}
      - name: ship
        kind: deploy
schedules: ['0 3 * * *']
environments:
  production: {application: shop}
";

    fn field_of(yaml: &str) -> String {
        Definition::parse("definition", yaml)
            .unwrap_err()
            .field()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_full_definition_parses_with_production_defaults() {
        let d = Definition::parse("definition", SAMPLE).unwrap();
        assert_eq!(d.stages.len(), 2);
        assert_eq!(d.stages[0].steps[1].timeout, Duration::from_secs(600));
        let Action::Approval(a) = &d.stages[1].steps[0].action else {
            panic!("not an approval")
        };
        assert!(a.four_eyes, "four-eyes is on in production");
        assert_eq!(a.required, 2);
        assert_eq!(
            d.stages[1].steps[1].action,
            Action::Deploy {
                environment: Environment::Production
            }
        );
        assert_eq!(d.schedule_branch, "main");
        let main = GitRef::Branch("main".into());
        assert_eq!(d.stages_for(&main).count(), 1);
        assert_eq!(d.stages_for(&GitRef::Tag("v1.0.0".into())).count(), 2);
    }

    #[test]
    fn every_step_survives_the_json_a_run_stores_it_as() {
        let d = Definition::parse("definition", SAMPLE).unwrap();
        for step in d.stages.iter().flat_map(|s| &s.steps) {
            let json = serde_json::to_value(step).unwrap();
            let back: Step = serde_json::from_value(json).unwrap();
            assert_eq!(&back, step);
        }
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(serde_json::from_value::<Definition>(json).unwrap(), d);
    }

    #[test]
    fn errors_name_the_path_of_the_wrong_field() {
        let bad_image = SAMPLE.replace("docker.io/library/rust:1", "Not An Image");
        assert_eq!(field_of(&bad_image), "definition.stages[0].steps[0].image");
        let bad_kind = SAMPLE.replace("kind: deploy", "kind: teleport");
        assert_eq!(field_of(&bad_kind), "definition.stages[1].steps[1].kind");
        let unknown = SAMPLE.replace("retries: 1", "retries: 1\n        colour: red");
        assert!(field_of(&unknown).starts_with("definition.stages[0].steps[1]"));
        let no_reports = SAMPLE.replace("reports: [reports/junit.xml]", "");
        assert_eq!(field_of(&no_reports), "definition.stages[0].steps[1].reports");
        let escape = SAMPLE.replace("reports/junit.xml", "../../etc/passwd");
        assert_eq!(field_of(&escape), "definition.stages[0].steps[1].reports[0]");
        let one_eye = SAMPLE.replace(
            "groups: [release-managers]}",
            "groups: [release-managers]}\n        required: 1",
        );
        assert_eq!(field_of(&one_eye), "definition.stages[1].steps[0].required");
        let off = SAMPLE.replace(
            "groups: [release-managers]}",
            "groups: [release-managers]}\n        four_eyes: false",
        );
        assert_eq!(field_of(&off), "definition.stages[1].steps[0].four_eyes");
        let dup = SAMPLE.replace("name: unit", "name: compile");
        assert_eq!(field_of(&dup), "definition.stages[0].steps[1].name");
        let cron = SAMPLE.replace("0 3 * * *", "every day");
        assert_eq!(field_of(&cron), "definition.schedules[0]");
        let timeout = SAMPLE.replace("timeout: 10m", "timeout: soon");
        assert_eq!(field_of(&timeout), "definition.stages[0].steps[1].timeout");
        let stray = SAMPLE.replace("commands: [make]", "commands: [make]\n        to: qa");
        assert_eq!(field_of(&stray), "definition.stages[0].steps[0].to");
        assert_eq!(field_of("stages: []"), "definition.stages");
        assert_eq!(field_of(": : :"), "definition");
    }

    #[test]
    fn every_deployed_environment_names_its_application() {
        let d = Definition::parse("definition", SAMPLE).unwrap();
        assert_eq!(
            d.environments[&Environment::Production],
            Target {
                application: "shop".into(),
                image_parameter: DEFAULT_IMAGE_PARAMETER.into()
            }
        );
        let missing = SAMPLE.replace("  production: {application: shop}", "  dev: {application: shop-dev}");
        assert_eq!(field_of(&missing), "definition.stages[1].steps[1].environment");
        let promote = SAMPLE.replace("kind: deploy", "kind: promote\n        to: staging");
        assert_eq!(field_of(&promote), "definition.stages[1].steps[1].to");
        let bad_name = SAMPLE.replace("application: shop}", "application: Shop Front}");
        assert_eq!(field_of(&bad_name), "definition.environments.production.application");
        let bad_parameter = SAMPLE.replace("application: shop}", "application: shop, image_parameter: 'a b'}");
        assert_eq!(
            field_of(&bad_parameter),
            "definition.environments.production.image_parameter"
        );
        let unknown = SAMPLE.replace("  production: {application: shop}", "  moon: {application: shop}");
        assert!(field_of(&unknown).starts_with("definition.environments"));
        let by_id = SAMPLE.replace(
            "application: shop}",
            "application: 0190a5b0-0000-7000-8000-000000000001, image_parameter: web_image}",
        );
        let d = Definition::parse("definition", &by_id).unwrap();
        assert_eq!(d.environments[&Environment::Production].image_parameter, "web_image");
        let old_run = serde_json::json!({"stages": [], "schedules": [], "schedule_branch": "main"});
        let stored: Definition = serde_json::from_value(old_run).unwrap();
        assert!(
            stored.environments.is_empty(),
            "runs stored before environments still load"
        );
    }

    #[test]
    fn build_image_steps_push_to_a_catalog_repository() {
        let with = |repo: &str| {
            let step = format!(
                concat!(
                    "      - name: image\n",
                    "        kind: build-image\n",
                    "        repository: {}\n",
                    "      - name: unit\n",
                ),
                repo
            );
            SAMPLE.replace("      - name: unit\n", &step)
        };
        let d = Definition::parse("definition", &with("acme/shop/web")).unwrap();
        assert_eq!(
            d.stages[0].steps[1].action,
            Action::BuildImage {
                containerfile: "Containerfile".into(),
                repository: "acme/shop/web".into()
            }
        );
        for bad in ["web", "acme/web", "acme/Shop/web", "acme//web", "acme/shop/-web"] {
            assert_eq!(
                field_of(&with(bad)),
                "definition.stages[0].steps[1].repository",
                "{bad}"
            );
        }
    }

    #[test]
    fn refs_follow_the_house_branch_rules() {
        let r = |s: &str| GitRef::parse("ref", s).unwrap();
        assert_eq!(r("refs/heads/develop").flow(), Flow::Integration);
        assert_eq!(r("refs/heads/feature-login").flow(), Flow::Feature("login".into()));
        assert_eq!(r("release-2.1").flow(), Flow::ReleaseCandidate);
        assert_eq!(r("refs/tags/v2.1.0").flow(), Flow::Production);
        assert_eq!(r("main").flow(), Flow::Other);
        assert_eq!(
            r("refs/tags/v2.1.0").flow().environment(),
            Some(Environment::Production)
        );
        for bad in ["", "a..b", "-x", "a b", "x.lock", "refs/heads/"] {
            assert!(GitRef::parse("ref", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_come_from_the_latest_tag_and_the_build_number() {
        let main = GitRef::Branch("main".into());
        let latest = latest_version_tag(["v1.2.0", "v1.10.1", "v1.9.9", "nightly", "v2.0.0-rc.1"]);
        assert_eq!(latest, Some("v1.10.1"));
        assert_eq!(build_version(latest, &main, 17), "1.10.2-build.17");
        assert_eq!(build_version(None, &main, 1), "0.0.0-build.1");
        assert_eq!(build_version(latest, &GitRef::Tag("v1.11.0".into()), 18), "1.11.0");
    }

    #[test]
    fn glob_patterns_match_like_shell_stars() {
        assert!(glob("feature-*", "feature-x"));
        assert!(glob("v*", "v1"));
        assert!(glob("*-rc*", "1.0-rc2"));
        assert!(!glob("feature-*", "features"));
        assert!(glob("main", "main"));
        assert!(!glob("a*b", "ab-c"));
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }
}
