//! Error answers in each API family's own shape, with the request id.
//!
//! | family | shape |
//! | --- | --- |
//! | ROMA Connect (VPC channels, member groups), GA, `/lbsim` | `{"error_code", "error_msg", "request_id"}` |
//! | ZStack | `{"error": {"code", "description", "details"}}` |
//! | SDRS | `{"badrequest" \| "itemNotFound" \| "error": {"code", "message"}}` |
//!
//! A 400 also lists every validation error (`errors`: code, parameter path, message) next to the
//! family's fields, so that a client sees all of them at once; `error_code`/`error_msg` carry the
//! first. A 500 says "System error" and nothing more: the cause goes to the log with the request
//! id, never to the client.

use crate::model::{Api, FieldError, Problem, ValidationErrors};
use hyper::StatusCode;
use serde_json::{json, Value};

/// An error answer: status, code in the family's style and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub api: Api,
    pub code: String,
    pub message: String,
    /// Every validation error (400 only).
    pub fields: Vec<FieldError>,
}

impl ApiError {
    fn new(status: StatusCode, api: Api, code: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, api, code: code.to_string(), message: message.into(), fields: Vec::new() }
    }

    /// 400 with every problem of the body.
    pub fn validation(api: Api, errors: ValidationErrors) -> ApiError {
        let first = errors.errors.first();
        let code = first.map_or(Problem::Invalid.code(api), |e| e.code);
        let message = errors.errors.iter().map(describe).collect::<Vec<_>>().join("; ");
        ApiError { fields: errors.errors, ..ApiError::new(StatusCode::BAD_REQUEST, api, code, message) }
    }

    /// 400 for one parameter.
    pub fn invalid(api: Api, problem: Problem, path: &str, message: impl Into<String>) -> ApiError {
        ApiError::validation(api, FieldError::new(api, problem, path, message).into())
    }

    /// 404 naming the missing resource and its id: `The instance does not exist;id:...`.
    pub fn not_found(api: Api, what: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            api,
            Problem::NotFound.code(api),
            format!("The {what} does not exist;id:{id}"),
        )
    }

    /// 404 for a path that no API has.
    pub fn no_route(api: Api, method: &str, path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            api,
            Problem::NotFound.code(api),
            format!("No API matches {method} {path}"),
        )
    }

    pub fn method_not_allowed(api: Api, method: &str, path: &str) -> ApiError {
        let code = Problem::Invalid.code(api);
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, api, code, format!("Method {method} is not allowed on {path}"))
    }

    /// 409: a name the family requires to be unique is taken.
    pub fn conflict(api: Api, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, api, Problem::Conflict.code(api), message)
    }

    pub fn unauthorized(api: Api) -> ApiError {
        let code = if api == Api::Zstack { "ID.1001" } else { "APIG.1002" };
        ApiError::new(StatusCode::UNAUTHORIZED, api, code, "Incorrect token or token resolution failed")
    }

    pub fn forbidden(api: Api) -> ApiError {
        let code = if api == Api::Zstack { "ID.1002" } else { "APIG.1005" };
        ApiError::new(StatusCode::FORBIDDEN, api, code, "No permissions to request this method")
    }

    pub fn too_large(api: Api, limit: usize) -> ApiError {
        let message = format!("The request body is larger than {limit} bytes");
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, api, Problem::Invalid.code(api), message)
    }

    /// 500. The cause is logged by the caller; the client only learns that it happened.
    pub fn internal(api: Api) -> ApiError {
        let code = match api {
            Api::Zstack => "SYS.1000",
            Api::Sdrs => "SDRS.9999",
            Api::Ga => "GA.9999",
            _ => "APIG.9999",
        };
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, api, code, "System error")
    }

    /// The body in the family's shape.
    pub fn body(&self, request_id: &str) -> Value {
        let errors: Vec<Value> = self
            .fields
            .iter()
            .map(|e| json!({"error_code": e.code, "parameter": e.path, "error_msg": e.message}))
            .collect();
        let mut body = match self.api {
            Api::Zstack => {
                json!({"error": {"code": self.code, "description": self.status.canonical_reason().unwrap_or("error"), "details": self.message}})
            }
            Api::Sdrs => {
                let key = match self.status {
                    StatusCode::BAD_REQUEST => "badrequest",
                    StatusCode::NOT_FOUND => "itemNotFound",
                    _ => "error",
                };
                json!({ key: {"code": self.code, "message": self.message} })
            }
            _ => json!({"error_code": self.code, "error_msg": self.message, "request_id": request_id}),
        };
        if !errors.is_empty() {
            if let Some(obj) = body.as_object_mut() {
                match obj.values_mut().next() {
                    Some(Value::Object(inner)) if self.api != Api::Roma && self.api != Api::Ga => {
                        inner.insert("errors".into(), Value::Array(errors));
                    }
                    _ => {
                        obj.insert("errors".into(), Value::Array(errors));
                    }
                }
            }
        }
        body
    }
}

/// `The request parameter is invalid, parameter name:members[0].weight, weight must be 0-100`.
fn describe(e: &FieldError) -> String {
    if e.path.is_empty() {
        e.message.clone()
    } else {
        format!("parameter name:{}, {}", e.path, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_per_family() {
        let roma = ApiError::not_found(Api::Roma, "VPC channel", "abc").body("rid");
        assert_eq!(
            roma,
            json!({"error_code": "APIG.3030", "error_msg": "The VPC channel does not exist;id:abc", "request_id": "rid"})
        );
        let z = ApiError::unauthorized(Api::Zstack).body("rid");
        assert_eq!(z["error"]["code"], "ID.1001");
        assert_eq!(z["error"]["description"], "Unauthorized");
        let s = ApiError::invalid(Api::Sdrs, Problem::Missing, "server_group.name", "required").body("rid");
        assert_eq!(s["badrequest"]["code"], "SDRS.1001");
        assert_eq!(s["badrequest"]["errors"][0]["parameter"], "server_group.name");
        let v = ApiError::invalid(Api::Roma, Problem::Invalid, "members[0].weight", "0-100").body("rid");
        assert_eq!(v["errors"][0]["parameter"], "members[0].weight");
        assert_eq!(v["error_msg"], "parameter name:members[0].weight, 0-100");
    }

    #[test]
    fn internal_errors_say_nothing_more() {
        let e = ApiError::internal(Api::Roma).body("rid");
        assert_eq!(e, json!({"error_code": "APIG.9999", "error_msg": "System error", "request_id": "rid"}));
    }
}
