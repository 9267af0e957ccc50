//! The chart's template set and the functions Helm has that `gtmpl-ng`'s
//! Helm set lacks or writes differently: `include` and `tpl` (which need the
//! chart's templates: they reach them through the thread rendering, since a
//! template function is a bare `fn`), `toYaml` (Helm trims the last newline),
//! `merge` (the first dict wins, as in Sprig), `nindent`, `join`, `splitList`, `sortAlpha`, `semverCompare` and `lookup`
//! (which, as in `helm template`, finds nothing).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use gtmpl_ng::helm_functions::HELM_FUNCTIONS;
use gtmpl_ng::{Context, Func, FuncError, Template, Value as Gtmpl};
use kernel::{Error, Result};
use serde_json::Value;

use super::constraint::satisfies;

/// The functions added to (or replacing) `gtmpl-ng`'s Helm set.
pub const EXTRA: [(&str, Func); 10] = [
    ("merge", merge as Func),
    ("include", include as Func),
    ("tpl", tpl as Func),
    ("toYaml", to_yaml as Func),
    ("nindent", nindent as Func),
    ("join", join as Func),
    ("splitList", split_list as Func),
    ("sortAlpha", sort_alpha as Func),
    ("semverCompare", semver_compare as Func),
    ("lookup", lookup as Func),
];

/// Every template of a chart tree, parsed once; `include` and `tpl` render
/// from it.
pub struct TemplateSet {
    sources: Sources,
    parsed: Template,
    cache: Cache,
}

/// The set parsed under each name `include` asked for (a `Template` renders
/// only the template it is named after).
type Cache = Rc<RefCell<HashMap<String, Rc<Template>>>>;

/// The deepest `include`/`tpl` nesting rendered: each level recurses on
/// the thread's stack, and a template that includes itself must end in an
/// error naming it, not in a stack overflow (Helm stops at 1,000; real
/// charts nest a handful).
pub const MAX_NESTING: usize = 32;

thread_local! {
    /// How deep in `include`/`tpl` the render on this thread is.
    static NESTING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The set rendering on this thread.
    static RENDERING: RefCell<Option<(Sources, Cache)>> = const { RefCell::new(None) };
}

/// A chart's template files, (name, text), shared by the nested renders.
type Sources = Rc<Vec<(String, String)>>;

fn parse(name: &str, sources: &[(String, String)]) -> Result<Template> {
    let mut t = Template::with_name(name);
    t.add_funcs(HELM_FUNCTIONS);
    t.add_funcs(&EXTRA);
    for (file, text) in sources {
        t.add_template(file.as_str(), text.as_str())
            .map_err(|e| located(file, &e.to_string()))?;
    }
    Ok(t)
}

/// An error naming the file its message points at (`template: web/templates/x.yaml:3:...`).
fn located(fallback: &str, message: &str) -> Error {
    let file = message
        .rsplit("template: ")
        .next()
        .and_then(|rest| rest.split(':').next())
        .filter(|f| f.contains("/templates/"))
        .unwrap_or(fallback);
    Error::invalid(file, message.to_string())
}

impl TemplateSet {
    /// Parses every source (path -> text).
    ///
    /// # Errors
    /// A template does not parse (names its file).
    pub fn new(sources: Vec<(String, String)>) -> Result<Self> {
        let parsed = parse("", &sources)?;
        Ok(Self {
            sources: Rc::new(sources),
            parsed,
            cache: Rc::default(),
        })
    }

    /// Renders the template `file` with `data` as dot.
    ///
    /// # Errors
    /// A template error, naming the file (and line) it happened in.
    pub fn render(&mut self, file: &str, data: &Value) -> Result<String> {
        struct Clear;
        impl Drop for Clear {
            fn drop(&mut self) {
                RENDERING.with(|r| r.borrow_mut().take());
            }
        }
        RENDERING.with(|r| *r.borrow_mut() = Some((self.sources.clone(), self.cache.clone())));
        let _clear = Clear;
        // The set renders the template it is named after.
        self.parsed.name = file.to_string();
        self.parsed
            .render(&Context::from(to_gtmpl(data)))
            .map_err(|e| located(file, &e.to_string()))
    }
}

/// The set parsed under `name`, from this thread's cache.
fn named(name: &str) -> std::result::Result<Rc<Template>, String> {
    let (sources, cache) = RENDERING
        .with(|r| r.borrow().clone())
        .ok_or("include and tpl work only while a chart renders")?;
    if let Some(t) = cache.borrow().get(name) {
        return Ok(t.clone());
    }
    let t = Rc::new(parse(name, &sources).map_err(|e| e.to_string())?);
    cache.borrow_mut().insert(name.to_string(), t.clone());
    Ok(t)
}

fn arg<'a>(args: &'a [Gtmpl], i: usize, name: &str) -> std::result::Result<&'a Gtmpl, FuncError> {
    args.get(i)
        .ok_or_else(|| FuncError::Generic(format!("{name} needs {} arguments", i + 1)))
}

fn text(v: &Gtmpl) -> String {
    match v {
        Gtmpl::String(s) => s.clone(),
        Gtmpl::Nil | Gtmpl::NoValue => String::new(),
        other => other.to_string(),
    }
}

/// `include "name" data`: a defined template's output, as a value.
fn include(args: &[Gtmpl]) -> std::result::Result<Gtmpl, FuncError> {
    let name = text(arg(args, 0, "include")?);
    let data = args.get(1).cloned().unwrap_or(Gtmpl::Nil);
    let t = named(&name).map_err(FuncError::Generic)?;
    nested(&format!("include \"{name}\""), || {
        t.render(&Context::from(data))
            .map(Gtmpl::String)
            .map_err(|e| FuncError::Generic(e.to_string()))
    })
}

/// Runs `render` one `include`/`tpl` level deeper, refusing past [`MAX_NESTING`].
fn nested(
    what: &str,
    render: impl FnOnce() -> std::result::Result<Gtmpl, FuncError>,
) -> std::result::Result<Gtmpl, FuncError> {
    let depth = NESTING.with(std::cell::Cell::get);
    if depth >= MAX_NESTING {
        return Err(FuncError::Generic(format!(
            "{what} nests deeper than {MAX_NESTING} levels (a template that includes itself?)"
        )));
    }
    NESTING.with(|n| n.set(depth + 1));
    let out = render();
    NESTING.with(|n| n.set(depth));
    out
}

/// `tpl "text" data`: renders text as a template of the chart.
fn tpl(args: &[Gtmpl]) -> std::result::Result<Gtmpl, FuncError> {
    let body = text(arg(args, 0, "tpl")?);
    let data = args.get(1).cloned().unwrap_or(Gtmpl::Nil);
    let sources = RENDERING
        .with(|r| r.borrow().as_ref().map(|(s, _)| s.clone()))
        .ok_or_else(|| FuncError::Generic("tpl works only while a chart renders".into()))?;
    // Nested in a render: the sources stay installed for includes inside the text.
    let mut t = parse("tpl", &sources).map_err(|e| FuncError::Generic(e.to_string()))?;
    t.add_template("tpl", body)
        .map_err(|e| FuncError::Generic(e.to_string()))?;
    nested("tpl", || {
        t.render(&Context::from(data))
            .map(Gtmpl::String)
            .map_err(|e| FuncError::Generic(e.to_string()))
    })
}

/// gtmpl's value as JSON (maps sorted, as Go's YAML and JSON write them).
pub fn to_json(v: &Gtmpl) -> Value {
    match v {
        Gtmpl::NoValue | Gtmpl::Nil | Gtmpl::Function(_) => Value::Null,
        Gtmpl::Bool(b) => Value::Bool(*b),
        Gtmpl::String(s) => Value::String(s.clone()),
        Gtmpl::Object(m) | Gtmpl::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Gtmpl::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Gtmpl::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
    }
}

/// JSON as gtmpl's value.
pub fn to_gtmpl(v: &Value) -> Gtmpl {
    match v {
        Value::Null => Gtmpl::Nil,
        Value::Bool(b) => Gtmpl::Bool(*b),
        Value::String(s) => Gtmpl::String(s.clone()),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Gtmpl::from(i),
            (None, Some(u)) => Gtmpl::from(u),
            _ => Gtmpl::from(n.as_f64().unwrap_or_default()),
        },
        Value::Array(a) => Gtmpl::Array(a.iter().map(to_gtmpl).collect()),
        Value::Object(m) => Gtmpl::Map(m.iter().map(|(k, v)| (k.clone(), to_gtmpl(v))).collect()),
    }
}

/// `toYaml v`: YAML without the trailing newline, as Helm writes it.
fn to_yaml(args: &[Gtmpl]) -> std::result::Result<Gtmpl, FuncError> {
    let value = to_json(arg(args, 0, "toYaml")?);
    if value.is_null() {
        return Ok(Gtmpl::String("null".into()));
    }
    let yaml = serde_yaml_neo::to_string(&value).map_err(|e| FuncError::Generic(e.to_string()))?;
    Ok(Gtmpl::String(yaml.trim_end_matches('\n').to_string()))
}

/// `merge dst src...`: `dst` with the keys it lacks taken from each `src`,
/// deeply; what `dst` has wins (Sprig's order).
fn merge(args: &[Gtmpl]) -> std::result::Result<Gtmpl, FuncError> {
    fn fill(dst: &mut Value, src: &Value) {
        if let (Value::Object(d), Value::Object(s)) = (dst, src) {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(existing) => fill(existing, v),
                    None => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    let mut out = to_json(arg(args, 0, "merge")?);
    for src in &args[1..] {
        fill(&mut out, &to_json(src));
    }
    Ok(to_gtmpl(&out))
}

/// `nindent n s`: a newline, then `s` with every line indented by `n` spaces.
fn nindent(args: &[Gtmpl]) -> std::result::Result<Gtmpl, FuncError> {
    let n = to_json(arg(args, 0, "nindent")?)
        .as_u64()
        .ok_or_else(|| FuncError::Generic("nindent: the width must be a whole number".into()))? as usize;
    let pad = " ".repeat(n);
    let s = text(arg(args, 1, "nindent")?);
    Ok(Gtmpl::String(format!(
        "\n{pad}{}",
        s.replace('\n', &format!("\n{pad}"))
    )))
}

/// `join sep list`.
fn join(args: &[Gtmpl]) -> std::result::Result<Gtmpl, FuncError> {
    let sep = text(arg(args, 0, "join")?);
    let items: Vec<String> = match arg(args, 1, "join")? {
        Gtmpl::Array(a) => a.iter().map(text).collect(),
        other => vec![text(other)],
    };
    Ok(Gtmpl::String(items.join(&sep)))
}

/// `splitList sep s`.
fn split_list(args: &[Gtmpl]) -> std::result::Result<Gtmpl, FuncError> {
    let sep = text(arg(args, 0, "splitList")?);
    let s = text(arg(args, 1, "splitList")?);
    Ok(Gtmpl::Array(
        s.split(sep.as_str()).map(|p| Gtmpl::String(p.to_string())).collect(),
    ))
}

/// `sortAlpha list`.
fn sort_alpha(args: &[Gtmpl]) -> std::result::Result<Gtmpl, FuncError> {
    let mut items: Vec<String> = match arg(args, 0, "sortAlpha")? {
        Gtmpl::Array(a) => a.iter().map(text).collect(),
        other => vec![text(other)],
    };
    items.sort();
    Ok(Gtmpl::Array(items.into_iter().map(Gtmpl::String).collect()))
}

/// `lookup ...`: like `helm template`, nothing is looked up in a cluster.
fn lookup(_: &[Gtmpl]) -> std::result::Result<Gtmpl, FuncError> {
    Ok(Gtmpl::Map(HashMap::new()))
}

/// `semverCompare constraint version`.
fn semver_compare(args: &[Gtmpl]) -> std::result::Result<Gtmpl, FuncError> {
    let constraint = text(arg(args, 0, "semverCompare")?);
    let version = text(arg(args, 1, "semverCompare")?);
    satisfies(&constraint, &version)
        .map(Gtmpl::Bool)
        .ok_or_else(|| FuncError::Generic(format!("semverCompare: cannot compare {version} with {constraint}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(sources: &[(&str, &str)], file: &str, data: Value) -> Result<String> {
        let mut set = TemplateSet::new(sources.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect())?;
        set.render(file, &data)
    }

    fn one(body: &str, data: Value) -> String {
        render(&[("c/templates/t.yaml", body)], "c/templates/t.yaml", data).unwrap()
    }

    #[test]
    fn a_template_that_includes_itself_is_an_error_not_a_stack_overflow() {
        let helpers = r#"{{- define "c.loop" -}}{{ include "c.loop" . }}{{- end }}"#;
        let e = render(
            &[
                ("c/templates/_helpers.tpl", helpers),
                ("c/templates/t.yaml", "x: {{ include \"c.loop\" . }}"),
            ],
            "c/templates/t.yaml",
            json!({}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("nests deeper than"), "{e}");
        // The depth is back to zero for the next render.
        let ok = render(
            &[
                ("c/templates/_helpers.tpl", r#"{{- define "c.x" -}}1{{- end }}"#),
                ("c/templates/t.yaml", "x: {{ include \"c.x\" . }}"),
            ],
            "c/templates/t.yaml",
            json!({}),
        );
        assert_eq!(ok.unwrap(), "x: 1");
    }

    #[test]
    fn include_renders_a_define_from_another_file_and_pipes_on() {
        let helpers = r#"{{- define "c.labels" -}}
app: {{ .name }}
tier: web
{{- end }}"#;
        let out = render(
            &[
                ("c/templates/_helpers.tpl", helpers),
                ("c/templates/t.yaml", "labels:{{ include \"c.labels\" . | nindent 2 }}"),
            ],
            "c/templates/t.yaml",
            json!({"name": "x"}),
        )
        .unwrap();
        assert_eq!(out, "labels:\n  app: x\n  tier: web");
    }

    #[test]
    fn an_unknown_include_fails_naming_it() {
        let err = render(
            &[("c/templates/t.yaml", "{{ include \"nope\" . }}")],
            "c/templates/t.yaml",
            json!({}),
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("c/templates/t.yaml"));
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn to_yaml_is_sorted_without_a_trailing_newline() {
        assert_eq!(
            one("{{ toYaml .v }}", json!({"v": {"b": [1, 2], "a": "x"}})),
            "a: x\nb:\n- 1\n- 2"
        );
        assert_eq!(
            one("x:{{ toYaml .v | nindent 2 }}", json!({"v": {"k": "v"}})),
            "x:\n  k: v"
        );
    }

    #[test]
    fn tpl_renders_a_value_as_a_template() {
        assert_eq!(
            one("{{ tpl .t . }}", json!({"t": "host-{{ .name }}", "name": "a"})),
            "host-a"
        );
    }

    #[test]
    fn helm_string_and_logic_functions_behave_like_helm() {
        let data = json!({"name": "a-very-long-name-", "n": 3, "m": {"k": 1}, "e": ""});
        assert_eq!(one("{{ .name | trunc 6 | trimSuffix \"-\" }}", data.clone()), "a-very");
        assert_eq!(
            one(
                "{{ .missing | default \"d\" }} {{ quote .n }} {{ squote \"s\" }}",
                data.clone()
            ),
            "d \"3\" 's'"
        );
        assert_eq!(
            one(
                "{{ printf \"%s-%d\" \"x\" .n }} {{ upper \"a\" }}{{ lower \"B\" }} {{ replace \"-\" \"_\" \"a-b\" }}",
                data.clone()
            ),
            "x-3 Ab a_b"
        );
        assert_eq!(
            one(
                "{{ b64enc \"hi\" }} {{ toJson .m }} {{ hasKey .m \"k\" }} {{ empty .e }} {{ ternary \"y\" \"n\" false }}",
                data.clone()
            ),
            "aGk= {\"k\":1} true true n"
        );
        assert_eq!(
            one(
                "{{ $d := dict \"a\" 1 }}{{ $l := list 1 2 3 }}{{ len $l }} {{ $d.a }} {{ join \",\" (list \"a\" \"b\") }}",
                data.clone()
            ),
            "3 1 a,b"
        );
        assert_eq!(
            one(
                "{{ $m := merge (dict \"a\" 1) (dict \"a\" 2 \"b\" 3) }}{{ $m.a }}{{ $m.b }}",
                data.clone()
            ),
            "13"
        );
        assert_eq!(one("{{ indent 2 \"a\\nb\" }}", data.clone()), "  a\n  b");
        assert!(
            render(
                &[("c/templates/t.yaml", "x\n{{ required \"need x\" .x }}")],
                "c/templates/t.yaml",
                json!({})
            )
            .unwrap_err()
            .to_string()
            .contains("need x")
        );
    }

    #[test]
    fn control_flow_and_whitespace_trimming_follow_go() {
        let body = "a:\n{{- range $k, $v := .m }}\n  {{ $k }}: {{ $v }}\n{{- end }}\n{{- with .w }}\nw: {{ . }}\n{{- end }}\n{{- if .none }}\nnone\n{{- end }}";
        assert_eq!(
            one(body, json!({"m": {"y": 2, "x": 1}, "w": "yes"})),
            "a:\n  x: 1\n  y: 2\nw: yes"
        );
    }

    #[test]
    fn semver_constraints_as_charts_write_them() {
        assert_eq!(satisfies(">=1.19-0", "v1.35.0"), Some(true));
        assert_eq!(satisfies("<1.19", "1.35.0"), Some(false));
        assert_eq!(satisfies(">=1.2, <2.0", "1.9.9"), Some(true));
        assert_eq!(satisfies("^1.2", "2.0.0"), Some(false));
        assert_eq!(satisfies("~1.2.0 || >=3", "3.1.0"), Some(true));
        assert_eq!(
            satisfies(">=1.0", "1.1.0-rc.1"),
            Some(false),
            "pre-releases only when the constraint admits them"
        );
        assert_eq!(
            one("{{ semverCompare \">=1.19-0\" .v }}", json!({"v": "v1.35.0"})),
            "true"
        );
    }
}
