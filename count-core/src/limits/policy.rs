//! [`Policy`]: the limits, the plans that name them, and which plan each subject is on.
//!
//! Plain data, stored in the backend as JSON (the HTTP API's body, verbatim) and read
//! by every replica. Every value is checked where it enters (parsing, or
//! [`Policy::check`] for one built in Rust), naming the value and the rule.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Method, Path, Result, Status, StatusClass, Subject, Zone};

/// The limits, the plans, and the subjects' plans: everything a [`Limiter`] enforces.
///
/// [`Limiter`]: super::Limiter
///
/// ```
/// use count_core::limits::Policy;
///
/// let policy = Policy::from_json(r#"{
///     "limits": {
///         "free-daily": { "period": "day", "zone": "Europe/Zurich", "amount": 1000 },
///         "pro-monthly": { "period": "cycle/15", "amount": 3000000, "statuses": ["2xx"],
///                          "hard": false, "thresholds": ["80%", "100%"] }
///     },
///     "plans": { "free": ["free-daily"], "pro": ["pro-monthly"] },
///     "subjects": { "acme": { "plan": "pro", "overrides": { "pro-monthly": 5000000 } } }
/// }"#)?;
/// assert_eq!(policy.amount_for("acme", "pro-monthly"), Some(5_000_000));
/// # Ok::<(), count_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Each limit, by its name.
    #[serde(default)]
    pub limits: BTreeMap<String, Limit>,
    /// Each plan's limits, by the plan's name.
    #[serde(default)]
    pub plans: BTreeMap<String, Vec<String>>,
    /// Each subject's plan, by the subject.
    #[serde(default)]
    pub subjects: BTreeMap<String, Assignment>,
}

/// One limit: which requests it counts, over what period, how many, and what happens
/// past it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Which endpoints count. Default: every one.
    #[serde(default, skip_serializing_if = "Endpoints::is_all")]
    pub endpoints: Endpoints,
    /// Which status classes count (`["2xx"]` counts successes only). Default: every
    /// status, and requests that ended without one. A request refused for its quota
    /// (429, gRPC `RESOURCE_EXHAUSTED`) never counts, whoever refused it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<Class>,
    /// The period the amount is for.
    pub period: LimitPeriod,
    /// Where the period's days begin. Default UTC.
    #[serde(default = "utc", skip_serializing_if = "Zone::is_utc")]
    pub zone: Zone,
    /// How many requests a subject may make in one period.
    pub amount: u64,
    /// Hard (default): refuse past the amount. Soft: admit, and flag it.
    #[serde(default = "yes")]
    pub hard: bool,
    /// When to notify, as usage reaches each. Default 80% and 100%.
    #[serde(default = "default_thresholds")]
    pub thresholds: Vec<Threshold>,
}

fn utc() -> Zone {
    Zone::UTC
}

fn yes() -> bool {
    true
}

fn default_thresholds() -> Vec<Threshold> {
    vec![Threshold::Percent(80), Threshold::Percent(100)]
}

impl Limit {
    /// A hard limit of `amount` requests per `period` in UTC, on every endpoint and
    /// status, with the default thresholds.
    pub fn new(period: LimitPeriod, amount: u64) -> Limit {
        Limit {
            endpoints: Endpoints::All,
            statuses: Vec::new(),
            period,
            zone: Zone::UTC,
            amount,
            hard: true,
            thresholds: default_thresholds(),
        }
    }

    /// Whether a request to `method path` counts against this limit, before its
    /// status is known.
    pub fn covers(&self, method: Method, path: &str) -> bool {
        match &self.endpoints {
            Endpoints::All => true,
            Endpoints::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Endpoints::List(list) => list.iter().any(|e| e.method == method && e.path == path),
        }
    }

    /// Whether a request that ended with `status` uses quota (see
    /// [`statuses`](Limit::statuses)).
    pub fn counts_status(&self, status: Option<Status>) -> bool {
        if status.is_some_and(is_quota_refusal) {
            return false;
        }
        self.statuses.is_empty()
            || status.is_some_and(|s| self.statuses.iter().any(|c| c.0 == s.class()))
    }
}

/// 429, or gRPC's `RESOURCE_EXHAUSTED`: a request refused for its quota.
pub fn is_quota_refusal(status: Status) -> bool {
    status.code() == if status.is_grpc() { 8 } else { 429 }
}

/// Which endpoints a [`Limit`] counts: `"all"`, a prefix of the route
/// (`{"prefix": "/v1/search"}`) or a list (`["GET /users/{id}", "POST /users"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
pub enum Endpoints {
    /// Every endpoint.
    #[default]
    All,
    /// Routes (templates, or gRPC method paths) that start with this text.
    Prefix(String),
    /// These endpoints.
    List(Vec<EndpointText>),
}

impl Endpoints {
    fn is_all(&self) -> bool {
        matches!(self, Endpoints::All)
    }
}

impl TryFrom<serde_json::Value> for Endpoints {
    type Error = Error;

    fn try_from(value: serde_json::Value) -> Result<Endpoints> {
        use serde_json::Value;
        const RULE: &str =
            "expected \"all\", {\"prefix\": \"/v1/\"} or a list such as [\"GET /users/{id}\"]";
        match value {
            Value::String(s) if s == "all" => Ok(Endpoints::All),
            Value::Object(ref o) if o.len() == 1 => match o.get("prefix") {
                Some(Value::String(prefix)) => Ok(Endpoints::Prefix(prefix.clone())),
                _ => Err(Error::invalid("endpoints", value.to_string(), RULE)),
            },
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(text) => EndpointText::try_from(text),
                    other => Err(Error::invalid("endpoints", other.to_string(), RULE)),
                })
                .collect::<Result<_>>()
                .map(Endpoints::List),
            other => Err(Error::invalid("endpoints", other.to_string(), RULE)),
        }
    }
}

impl From<Endpoints> for serde_json::Value {
    fn from(e: Endpoints) -> serde_json::Value {
        match e {
            Endpoints::All => "all".into(),
            Endpoints::Prefix(prefix) => serde_json::json!({ "prefix": prefix }),
            Endpoints::List(list) => list
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
                .into(),
        }
    }
}

/// An endpoint as text, `METHOD PATH`, checked but not interned (a limit on an
/// endpoint never counted makes no endpoint of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointText {
    /// The method.
    pub method: Method,
    /// The route's text.
    pub path: String,
}

impl TryFrom<String> for EndpointText {
    type Error = Error;

    fn try_from(text: String) -> Result<EndpointText> {
        let (method, path) = crate::Endpoint::split_text(&text)?;
        Ok(EndpointText {
            method,
            path: path.to_owned(),
        })
    }
}

impl From<EndpointText> for String {
    fn from(e: EndpointText) -> String {
        format!("{} {}", e.method.as_str(), e.path)
    }
}

/// A status class, `"2xx"`, in a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Class(pub StatusClass);

impl TryFrom<String> for Class {
    type Error = Error;

    fn try_from(text: String) -> Result<Class> {
        match text.parse()? {
            crate::StatusFilter::Class(class) => Ok(Class(class)),
            crate::StatusFilter::Code(_) => Err(Error::invalid(
                "statuses",
                text,
                "a limit counts classes of statuses: 1xx, 2xx, 3xx, 4xx or 5xx",
            )),
        }
    }
}

impl From<Class> for String {
    fn from(c: Class) -> String {
        c.0.as_str().to_owned()
    }
}

/// What a [`Limit`]'s amount is for: `"hour"`, `"day"`, `"week"` (ISO: from Monday),
/// `"month"`, or `"cycle/15"`, a billing cycle from the 15th of each month (an anchor
/// past a month's end starts on its last day) — each in the limit's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LimitPeriod {
    /// One hour of the zone's clock.
    Hour,
    /// One day of the zone.
    Day,
    /// One ISO week of the zone.
    Week,
    /// One calendar month of the zone.
    Month,
    /// One billing cycle.
    Cycle {
        /// The day of the month cycles start on, 1 to 31.
        anchor: u32,
    },
}

impl LimitPeriod {
    /// The name the `RateLimit-Policy` header and the API show: `day`, `cycle/15`.
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl FromStr for LimitPeriod {
    type Err = Error;

    fn from_str(text: &str) -> Result<LimitPeriod> {
        const RULE: &str = "expected hour, day, week, month or cycle/D (D: the day of the month cycles start on, 1 to 31)";
        Ok(match text {
            "hour" => LimitPeriod::Hour,
            "day" => LimitPeriod::Day,
            "week" => LimitPeriod::Week,
            "month" => LimitPeriod::Month,
            _ => {
                let anchor = text
                    .strip_prefix("cycle/")
                    .filter(|d| {
                        !d.is_empty() && d.len() <= 2 && d.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|d| d.parse().ok())
                    .filter(|d| (1..=31).contains(d))
                    .ok_or_else(|| Error::invalid("period", text, RULE))?;
                LimitPeriod::Cycle { anchor }
            }
        })
    }
}

impl TryFrom<String> for LimitPeriod {
    type Error = Error;

    fn try_from(text: String) -> Result<LimitPeriod> {
        text.parse()
    }
}

impl From<LimitPeriod> for String {
    fn from(p: LimitPeriod) -> String {
        p.to_string()
    }
}

impl fmt::Display for LimitPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitPeriod::Hour => f.write_str("hour"),
            LimitPeriod::Day => f.write_str("day"),
            LimitPeriod::Week => f.write_str("week"),
            LimitPeriod::Month => f.write_str("month"),
            LimitPeriod::Cycle { anchor } => write!(f, "cycle/{anchor}"),
        }
    }
}

/// When a limit notifies: at a share of its amount (`"80%"`) or a number of requests
/// (`5000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
pub enum Threshold {
    /// A share of the amount, 1 to 1000 %.
    Percent(u32),
    /// A number of requests.
    Absolute(u64),
}

impl Threshold {
    /// The usage this threshold is reached at, for `amount`.
    pub fn at(self, amount: u64) -> u64 {
        match self {
            Threshold::Percent(p) => (u128::from(amount) * u128::from(p)).div_ceil(100) as u64,
            Threshold::Absolute(n) => n,
        }
    }
}

impl TryFrom<serde_json::Value> for Threshold {
    type Error = Error;

    fn try_from(value: serde_json::Value) -> Result<Threshold> {
        const RULE: &str =
            "expected a share such as \"80%\" (1% to 1000%) or a number of requests such as 5000";
        let refuse = || Error::invalid("thresholds", value.to_string(), RULE);
        match &value {
            serde_json::Value::Number(n) => n.as_u64().filter(|n| *n > 0).map(Threshold::Absolute),
            serde_json::Value::String(s) => s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.len() <= 4 && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse().ok())
                .filter(|p| (1..=1000).contains(p))
                .map(Threshold::Percent),
            _ => None,
        }
        .ok_or_else(refuse)
    }
}

impl From<Threshold> for serde_json::Value {
    fn from(t: Threshold) -> serde_json::Value {
        match t {
            Threshold::Percent(p) => format!("{p}%").into(),
            Threshold::Absolute(n) => n.into(),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Percent(p) => write!(f, "{p}%"),
            Threshold::Absolute(n) => write!(f, "{n}"),
        }
    }
}

/// A subject's plan, and amounts that differ from the plan's for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The plan's name.
    pub plan: String,
    /// Amounts for this subject, by limit name (a limit of its plan).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, u64>,
}

impl Assignment {
    /// On `plan`, without overrides.
    pub fn plan(plan: impl Into<String>) -> Assignment {
        Assignment {
            plan: plan.into(),
            overrides: BTreeMap::new(),
        }
    }
}

/// The longest name of a limit or a plan.
pub const MAX_NAME_LEN: usize = 64;

impl Policy {
    /// Parses and checks a policy from its JSON (as the HTTP API takes it).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `policy`) naming the value, the rule and where
    /// it is; or as [`Policy::check`].
    pub fn from_json(text: &str) -> Result<Policy> {
        let json = &mut serde_json::Deserializer::from_str(text);
        let policy: Policy = serde_path_to_error::deserialize(json).map_err(|e| {
            let rule = format!("at {}: {}", e.path(), e.inner());
            Error::invalid("policy", shorten(text), rule)
        })?;
        policy.check()?;
        Ok(policy)
    }

    /// The policy as JSON, as [`from_json`](Policy::from_json) reads it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a policy is plain data")
    }

    /// Checks what the types cannot: names (1 to 64 letters, digits, `-`, `_`, `.`),
    /// that every plan names limits that exist, every subject a plan that exists and
    /// a valid subject, overrides limits of its plan, and that amounts and thresholds
    /// fit.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the field, the value and the rule.
    pub fn check(&self) -> Result<()> {
        for (name, limit) in &self.limits {
            check_name("limit", name)?;
            if let Endpoints::Prefix(prefix) = &limit.endpoints
                && (prefix.is_empty() || prefix.len() > Path::MAX_LEN)
            {
                return Err(Error::invalid(
                    "endpoints",
                    prefix,
                    format!("limit {name:?}: a prefix is 1 to {} bytes", Path::MAX_LEN),
                ));
            }
            if limit.thresholds.len() > 16 {
                return Err(Error::invalid(
                    "thresholds",
                    limit.thresholds.len(),
                    format!("limit {name:?}: at most 16 thresholds"),
                ));
            }
            if limit.amount > MAX_AMOUNT {
                return Err(Error::invalid(
                    "amount",
                    limit.amount,
                    format!("limit {name:?}: at most {MAX_AMOUNT}"),
                ));
            }
        }
        for (plan, limits) in &self.plans {
            check_name("plan", plan)?;
            if limits.len() > super::MAX_LIMITS_PER_PLAN {
                return Err(Error::invalid(
                    "limits",
                    limits.len(),
                    format!(
                        "plan {plan:?}: at most {} limits",
                        super::MAX_LIMITS_PER_PLAN
                    ),
                ));
            }
            for limit in limits {
                if !self.limits.contains_key(limit) {
                    return Err(Error::invalid(
                        "limits",
                        limit,
                        format!("plan {plan:?} names a limit that does not exist"),
                    ));
                }
            }
        }
        for (subject, assignment) in &self.subjects {
            Subject::check(subject)?;
            let Some(limits) = self.plans.get(&assignment.plan) else {
                return Err(Error::invalid(
                    "plan",
                    &assignment.plan,
                    format!("subject {subject:?} is on a plan that does not exist"),
                ));
            };
            for (limit, amount) in &assignment.overrides {
                if !limits.contains(limit) {
                    return Err(Error::invalid(
                        "overrides",
                        limit,
                        format!(
                            "subject {subject:?}: not a limit of its plan {:?}",
                            assignment.plan
                        ),
                    ));
                }
                if *amount > MAX_AMOUNT {
                    return Err(Error::invalid(
                        "overrides",
                        amount,
                        format!("subject {subject:?}, limit {limit:?}: at most {MAX_AMOUNT}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The amount of `limit` for `subject`: its override, else the limit's; `None`
    /// when the subject's plan has no such limit.
    pub fn amount_for(&self, subject: &str, limit: &str) -> Option<u64> {
        let assignment = self.subjects.get(subject)?;
        if !self.plans.get(&assignment.plan)?.iter().any(|l| l == limit) {
            return None;
        }
        assignment
            .overrides
            .get(limit)
            .copied()
            .or_else(|| self.limits.get(limit).map(|l| l.amount))
    }
}

/// The largest amount: 2^47, so that a lease and what is left fit one atomic word.
pub const MAX_AMOUNT: u64 = 1 << 47;

fn check_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            name,
            format!("a {what}'s name is 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'"),
        ))
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Serde for [`Zone`]: its IANA name.
mod zone_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

    use crate::Zone;

    impl Serialize for Zone {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(self.name())
        }
    }

    impl<'de> Deserialize<'de> for Zone {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Zone, D::Error> {
            let name = String::deserialize(deserializer)?;
            Zone::new(&name).map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_reads_back_as_written() {
        let text = r#"{"limits":{"d":{"endpoints":{"prefix":"/v1/"},"statuses":["2xx"],"period":"cycle/31","zone":"Asia/Kolkata","amount":5,"hard":false,"thresholds":["80%",3]},"e":{"endpoints":["GET /a/{id}"],"period":"day","amount":1,"hard":true,"thresholds":["80%","100%"]}},"plans":{"p":["d","e"]},"subjects":{"acme":{"plan":"p","overrides":{"e":9}}}}"#;
        let policy = Policy::from_json(text).unwrap();
        assert_eq!(policy.to_json(), text);
        assert_eq!(policy.amount_for("acme", "e"), Some(9));
        assert_eq!(policy.amount_for("acme", "d"), Some(5));
        assert_eq!(policy.amount_for("other", "d"), None);
        let defaults =
            Policy::from_json(r#"{"limits":{"x":{"period":"hour","amount":3}}}"#).unwrap();
        let x = &defaults.limits["x"];
        assert!(x.hard && x.zone.is_utc() && x.endpoints == Endpoints::All);
        assert_eq!(x.thresholds, default_thresholds());
    }

    #[test]
    fn bad_values_are_refused_naming_them() {
        for (text, says) in [
            (
                r#"{"limits":{"x":{"period":"fortnight","amount":3}}}"#,
                "invalid period \"fortnight\"",
            ),
            (
                r#"{"limits":{"x":{"period":"cycle/32","amount":3}}}"#,
                "invalid period \"cycle/32\"",
            ),
            (r#"{"limits":{"x":{"period":"day","amount":-1}}}"#, "amount"),
            (
                r#"{"limits":{"x":{"period":"day","amount":3,"zone":"Mars/Base"}}}"#,
                "\"Mars/Base\"",
            ),
            (
                r#"{"limits":{"x":{"period":"day","amount":3,"statuses":["404"]}}}"#,
                "classes of statuses",
            ),
            (
                r#"{"limits":{"x":{"period":"day","amount":3,"thresholds":["0%"]}}}"#,
                "invalid thresholds \"\\\"0%\\\"\"",
            ),
            (
                r#"{"limits":{"x":{"period":"day","amount":3,"endpoints":"some"}}}"#,
                "expected \"all\"",
            ),
            (
                r#"{"limits":{"x":{"period":"day","amount":3,"endpoints":["/a"]}}}"#,
                "endpoint",
            ),
            (
                r#"{"limits":{"x":{"period":"day","amout":3}}}"#,
                "unknown field `amout`",
            ),
            (
                r#"{"limits":{"a b":{"period":"day","amount":3}}}"#,
                "invalid limit \"a b\"",
            ),
            (
                r#"{"plans":{"p":["nope"]}}"#,
                "invalid limits \"nope\": plan \"p\"",
            ),
            (
                r#"{"subjects":{"acme":{"plan":"gold"}}}"#,
                "invalid plan \"gold\"",
            ),
            (
                r#"{"limits":{"x":{"period":"day","amount":3}},"plans":{"p":["x"]},"subjects":{"":{"plan":"p"}}}"#,
                "subject",
            ),
            (
                r#"{"limits":{"x":{"period":"day","amount":3}},"plans":{"p":[],"q":["x"]},"subjects":{"a":{"plan":"p","overrides":{"x":4}}}}"#,
                "not a limit of its plan",
            ),
        ] {
            let error = Policy::from_json(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn which_requests_and_statuses_count() {
        let mut limit = Limit::new(LimitPeriod::Day, 10);
        let path = "/v1/search";
        assert!(limit.covers(Method::Get, path));
        limit.endpoints = Endpoints::Prefix("/v2/".into());
        assert!(!limit.covers(Method::Get, path));
        limit.endpoints = Endpoints::List(vec!["GET /v1/search".to_owned().try_into().unwrap()]);
        assert!(limit.covers(Method::Get, path));
        assert!(!limit.covers(Method::Post, path));
        assert!(limit.counts_status(None));
        assert!(limit.counts_status(Some(Status::http(500).unwrap())));
        assert!(!limit.counts_status(Some(Status::http(429).unwrap())));
        assert!(!limit.counts_status(Some(Status::grpc(8).unwrap())));
        limit.statuses = vec![Class(StatusClass::Success)];
        assert!(!limit.counts_status(None));
        assert!(!limit.counts_status(Some(Status::http(500).unwrap())));
        assert!(limit.counts_status(Some(Status::grpc(0).unwrap())));
        assert_eq!(Threshold::Percent(80).at(10_001), 8001);
    }
}
