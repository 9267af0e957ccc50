//! `authorization.k8s.io/v1` access reviews, which `kubectl auth can-i` and
//! controllers ask before acting. kubesim has no RBAC: every request is
//! allowed, and the reviews say so (allowed, with a reason naming kubesim)
//! rather than answering NotFound.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::status::{Details, Error, Result};

/// The API group of the reviews.
pub(crate) const GROUP: &str = "authorization.k8s.io";
/// Its only served version.
pub(crate) const VERSION: &str = "v1";

/// Why every review is allowed.
const REASON: &str = "kubesim has no RBAC: every request is allowed";

/// The review kinds: plural, kind, whether namespaced.
const KINDS: &[(&str, &str, bool)] = &[
    ("selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
    ("selfsubjectrulesreviews", "SelfSubjectRulesReview", false),
    ("subjectaccessreviews", "SubjectAccessReview", false),
    ("localsubjectaccessreviews", "LocalSubjectAccessReview", true),
];

/// The `APIResourceList` of the group version (every review is create-only).
pub(crate) fn resource_list() -> Value {
    let resources: Vec<Value> = KINDS
        .iter()
        .map(|(plural, kind, namespaced)| {
            json!({ "name": plural, "singularName": plural.trim_end_matches('s'), "namespaced": namespaced,
                    "kind": kind, "verbs": ["create"] })
        })
        .collect();
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{GROUP}/{VERSION}"),
            "resources": resources })
}

/// Answers a request under `/apis/authorization.k8s.io/v1/` (`rest` is the
/// path after it) carrying `body`: the review with its status filled in.
///
/// # Errors
/// 404 for paths that are not reviews, 405 for verbs other than create,
/// 400/422 for bodies that are not a valid review.
pub(crate) fn handle(method: &Method, rest: &[&str], body: &[u8]) -> Result<(StatusCode, Value)> {
    let plural = match rest {
        [plural] | ["namespaces", _, plural] => *plural,
        _ => return Err(not_found()),
    };
    let Some((_, kind, namespaced)) = KINDS.iter().find(|(p, ..)| *p == plural) else {
        return Err(not_found());
    };
    if *namespaced != (rest.len() == 3) {
        return Err(not_found());
    }
    if *method != Method::POST {
        return Err(Error::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource: {method}"
        )));
    }
    let mut review: Value =
        serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("error decoding the request body: {e}")))?;
    if !review.is_object() {
        return Err(Error::BadRequest(format!("the body of a {kind} must be an object")));
    }
    let spec = &review["spec"];
    if *kind == "SelfSubjectRulesReview" {
        review["status"] = json!({
            "resourceRules": [{ "verbs": ["*"], "apiGroups": ["*"], "resources": ["*"] }],
            "nonResourceRules": [{ "verbs": ["*"], "nonResourceURLs": ["*"] }],
            "incomplete": false,
        });
    } else {
        let resource = !spec["resourceAttributes"].is_null();
        let non_resource = !spec["nonResourceAttributes"].is_null();
        if resource == non_resource {
            return Err(invalid(
                kind,
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
        if *kind != "SelfSubjectAccessReview"
            && spec["user"].as_str().unwrap_or_default().is_empty()
            && spec["groups"].as_array().is_none_or(Vec::is_empty)
        {
            return Err(invalid(
                kind,
                "spec.user",
                "at least one of user or group must be specified",
            ));
        }
        review["status"] = json!({ "allowed": true, "reason": REASON });
    }
    review["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
    review["kind"] = json!(kind);
    if review["metadata"].is_null() {
        review["metadata"] = json!({});
    }
    Ok((StatusCode::CREATED, review))
}

fn not_found() -> Error {
    Error::NotFound {
        message: "the server could not find the requested resource".into(),
        details: Details::default(),
    }
}

fn invalid(kind: &str, field: &str, why: &str) -> Error {
    Error::Invalid {
        message: format!("{kind}.{GROUP} \"\" is invalid: {field}: Invalid value: \"null\": {why}"),
        details: Details {
            name: String::new(),
            group: GROUP.into(),
            kind: (*kind).into(),
            causes: vec![("FieldValueInvalid".into(), field.into(), why.into())],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_without_attributes_is_invalid() {
        let body = br#"{"spec":{}}"#;
        let err = handle(&Method::POST, &["selfsubjectaccessreviews"], body).unwrap_err();
        assert_eq!(err.code(), 422);
        let body = br#"{"spec":{"resourceAttributes":{"verb":"get","resource":"pods"}}}"#;
        assert_eq!(
            handle(&Method::GET, &["selfsubjectaccessreviews"], body)
                .unwrap_err()
                .code(),
            405
        );
    }
}
