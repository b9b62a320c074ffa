//! Validation errors in the cloud APIs' error style: a code, the parameter's path, and what is wrong.

use std::fmt;

/// Which API family a body belongs to; decides the error-code style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// ROMA Connect / APIG (the create-VPC-channel and add-or-update-member-groups APIs): `APIG.xxxx`.
    Roma,
    /// ZStack (the add-backend-servers API): `SYS.xxxx`.
    Zstack,
    /// Global Accelerator (the add-endpoint-group API): `GA.xxxx`.
    Ga,
    /// SDRS (the create-protection-group API): `SDRS.xxxx`.
    Sdrs,
    /// lbsim's own scenario sections (`[balancer]`, `[traffic]`, ...): `LBSIM.xxxx`.
    Scenario,
}

/// What kind of problem a field has. Each API family maps it onto its own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Problem {
    /// A required parameter is absent or empty.
    Missing,
    /// A value is out of range, too long, or does not match its pattern.
    Invalid,
    /// A field that the body's schema does not have.
    Unknown,
    /// A value of the wrong JSON/TOML type, or a syntax error.
    Malformed,
    /// Two parameters contradict each other, or a name is used twice where it must be unique.
    Conflict,
    /// A parameter refers to something that does not exist (a member group, a member).
    NotFound,
}

impl Problem {
    /// The error code of this problem in an API family's style.
    pub fn code(self, api: Api) -> &'static str {
        use Problem::*;
        match (api, self) {
            (Api::Roma, Missing) => "APIG.2001",
            (Api::Roma, Invalid) => "APIG.2011",
            (Api::Roma, Unknown) => "APIG.2004",
            (Api::Roma, Malformed) => "APIG.2002",
            (Api::Roma, Conflict) => "APIG.2012",
            (Api::Roma, NotFound) => "APIG.3030",
            (Api::Zstack, Missing) => "SYS.1006",
            (Api::Zstack, NotFound) => "SYS.1004",
            (Api::Zstack, _) => "SYS.1007",
            (Api::Ga, Missing) => "GA.1001",
            (Api::Ga, NotFound) => "GA.1004",
            (Api::Ga, _) => "GA.1002",
            (Api::Sdrs, Missing) => "SDRS.1001",
            (Api::Sdrs, NotFound) => "SDRS.1004",
            (Api::Sdrs, _) => "SDRS.1002",
            (Api::Scenario, Missing) => "LBSIM.1001",
            (Api::Scenario, Invalid) => "LBSIM.1002",
            (Api::Scenario, Unknown) => "LBSIM.1003",
            (Api::Scenario, Malformed) => "LBSIM.1004",
            (Api::Scenario, Conflict) => "LBSIM.1005",
            (Api::Scenario, NotFound) => "LBSIM.1006",
        }
    }
}

/// One problem with one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `APIG.2011`, `SYS.1007`, ...
    pub code: &'static str,
    pub problem: Problem,
    /// The parameter's path in the body: `members[2].weight`.
    pub path: String,
    /// What is wrong, without the path.
    pub message: String,
}

impl FieldError {
    pub fn new(api: Api, problem: Problem, path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { code: problem.code(api), problem, path: path.into(), message: message.into() }
    }

    /// The same error under a longer path (`members[0]` under `channel` becomes `channel.members[0]`).
    pub fn under(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            self.path = join_path(prefix, &self.path);
        }
        self
    }
}

/// `a` + `b` as a parameter path: `channel` + `members[0]` = `channel.members[0]`; `x` + `[1]` = `x[1]`.
pub fn join_path(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ if b.starts_with('[') => format!("{a}{b}"),
        _ => format!("{a}.{b}"),
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.code, self.message)
        } else {
            write!(f, "{}: {}: {}", self.code, self.path, self.message)
        }
    }
}

/// Every problem of a body at once. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Ok when nothing was found.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// The first error with this path, if any (handy in tests and API responses).
    pub fn at(&self, path: &str) -> Option<&FieldError> {
        self.errors.iter().find(|e| e.path == path)
    }

    pub fn under(self, prefix: &str) -> Self {
        ValidationErrors { errors: self.errors.into_iter().map(|e| e.under(prefix)).collect() }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl From<FieldError> for ValidationErrors {
    fn from(e: FieldError) -> Self {
        ValidationErrors { errors: vec![e] }
    }
}

/// Collects errors for one API family while a validator walks a body.
#[derive(Debug)]
pub struct Collector {
    api: Api,
    pub errors: Vec<FieldError>,
}

impl Collector {
    pub fn new(api: Api) -> Self {
        Collector { api, errors: Vec::new() }
    }

    pub fn api(&self) -> Api {
        self.api
    }

    pub fn push(&mut self, problem: Problem, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(self.api, problem, path, message));
    }

    pub fn missing(&mut self, path: impl Into<String>) {
        self.push(Problem::Missing, path, "the request parameter must be specified");
    }

    pub fn invalid(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(Problem::Invalid, path, message);
    }

    pub fn finish(self) -> ValidationErrors {
        ValidationErrors { errors: self.errors }
    }
}
