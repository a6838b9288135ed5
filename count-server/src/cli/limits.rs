//! `count-server limits`: the policy of limits — show it, set or remove a limit or a
//! plan, put a subject on a plan, replace it all from a file, and see who stands
//! where against their limits.

use std::collections::BTreeMap;
use std::path::PathBuf;

use count::Migrations;
use count_core::limits::{
    Assignment, Class, Endpoints, Limit, LimitPeriod, Policy, Threshold, change_policy, usage,
};
use count_core::{CounterExt, Error, Zone};

use super::failure::Failure;
use super::source::Source;
use super::table::thousands;

pub(super) const HELP: &str = concat!(
    "\
Examples:
  count-server limits show --server http://localhost:7777
  count-server limits set-limit free-daily --period day --amount 1000 --zone Europe/Zurich
  count-server limits set-limit pro-monthly --period cycle/15 --amount 3000000 --status 2xx --soft
  count-server limits set-plan free free-daily
  count-server limits assign acme free --override free-daily=5000
  count-server limits usage --top 20
  count-server limits apply policy.json

Changes take effect on every replica within its reload interval (2 s). A change
reads the policy and replaces it from the version read, again if another change
came first.

",
    super::exit_codes!()
);

/// The options of `count-server limits`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitsArgs {
    #[command(subcommand)]
    action: Action,

    #[command(flatten)]
    source: Source,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum Action {
    /// Print the policy as JSON (what `apply` reads).
    Show,
    /// Add or replace a limit.
    SetLimit {
        /// The limit's name: letters, digits, '-', '_', '.'.
        name: String,
        /// hour, day, week, month, or cycle/D (a billing cycle from day D).
        #[arg(long)]
        period: LimitPeriod,
        /// Requests a subject may make in one period.
        #[arg(long)]
        amount: u64,
        /// The IANA zone the periods begin in.
        #[arg(long, default_value = "UTC")]
        zone: String,
        /// Count only routes starting with this text.
        #[arg(long, conflicts_with = "endpoint")]
        prefix: Option<String>,
        /// Count only this endpoint, "GET /users/{id}" (repeat for more).
        #[arg(long)]
        endpoint: Vec<String>,
        /// Count only this class of statuses, 2xx (repeat for more).
        #[arg(long)]
        status: Vec<String>,
        /// Admit past the amount (and flag it) rather than refuse.
        #[arg(long)]
        soft: bool,
        /// Notify at this share ("80%") or number of requests (repeat; default 80% and 100%).
        #[arg(long)]
        threshold: Vec<String>,
    },
    /// Remove a limit (no plan may name it).
    RemoveLimit { name: String },
    /// Add or replace a plan: its name, then its limits.
    SetPlan { name: String, limits: Vec<String> },
    /// Remove a plan (no subject may be on it).
    RemovePlan { name: String },
    /// Put a subject on a plan.
    Assign {
        subject: String,
        plan: String,
        /// LIMIT=AMOUNT: this subject's own amount for a limit of its plan (repeat).
        #[arg(long = "override")]
        overrides: Vec<String>,
    },
    /// Take a subject off its plan: its requests pass unlimited.
    Unassign { subject: String },
    /// Replace the whole policy with a JSON file's (as `show` prints it).
    Apply { file: PathBuf },
    /// Subjects against their limits now, nearest first.
    Usage {
        /// Only this subject.
        #[arg(long)]
        subject: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
}

fn usage_error(error: Error) -> Failure {
    Failure::Usage(error.to_string())
}

pub(super) async fn run(args: LimitsArgs) -> Result<(), Failure> {
    let read_only = matches!(args.action, Action::Show | Action::Usage { .. });
    let counter = args
        .source
        .open(if read_only {
            Migrations::ReadOnly
        } else {
            Migrations::Check
        })
        .await?;
    let counter = &*counter;
    let changed = match args.action {
        Action::Show => {
            let stored = counter.policy().await?;
            let json = serde_json::to_string_pretty(&stored.policy).expect("plain data");
            return super::print(&format!("{json}\n"));
        }
        Action::Usage { subject, top } => {
            let stored = counter.policy().await?;
            let now = count_core::jiff::Timestamp::now().as_second();
            let rows = usage(counter, &stored.policy, now, subject.as_deref()).await?;
            if rows.is_empty() {
                return super::print("No subject is on a plan with limits.\n");
            }
            let mut out = format!(
                "{:<24} {:<16} {:<9} {:>12} {:>12} {:>7}\n",
                "SUBJECT", "LIMIT", "PERIOD", "USED", "AMOUNT", "USE"
            );
            for row in rows.iter().take(top) {
                out.push_str(&format!(
                    "{:<24} {:<16} {:<9} {:>12} {:>12} {:>6.1}%{}\n",
                    row.subject,
                    row.limit,
                    row.period.to_string(),
                    thousands(row.used),
                    thousands(row.amount),
                    row.share() * 100.0,
                    if row.used >= row.amount { "  over" } else { "" }
                ));
            }
            return super::print(&out);
        }
        Action::SetLimit {
            name,
            period,
            amount,
            zone,
            prefix,
            endpoint,
            status,
            soft,
            threshold,
        } => {
            let mut limit = Limit::new(period, amount);
            limit.zone = Zone::new(&zone).map_err(usage_error)?;
            limit.hard = !soft;
            limit.endpoints = match prefix {
                Some(prefix) => Endpoints::Prefix(prefix),
                None if endpoint.is_empty() => Endpoints::All,
                None => Endpoints::List(
                    endpoint
                        .into_iter()
                        .map(TryFrom::try_from)
                        .collect::<Result<_, _>>()
                        .map_err(usage_error)?,
                ),
            };
            limit.statuses = status
                .into_iter()
                .map(Class::try_from)
                .collect::<Result<_, _>>()
                .map_err(usage_error)?;
            if !threshold.is_empty() {
                limit.thresholds = threshold
                    .into_iter()
                    .map(|t| {
                        let value = t
                            .parse::<u64>()
                            .map_or_else(|_| serde_json::Value::from(t.clone()), Into::into);
                        Threshold::try_from(value)
                    })
                    .collect::<Result<_, _>>()
                    .map_err(usage_error)?;
            }
            change_policy(counter, |p| {
                p.limits.insert(name.clone(), limit.clone());
                Ok(())
            })
            .await
        }
        Action::RemoveLimit { name } => {
            change_policy(counter, |p| {
                p.limits
                    .remove(&name)
                    .map(drop)
                    .ok_or_else(|| Error::NotFound(format!("no limit {name:?}")))
            })
            .await
        }
        Action::SetPlan { name, limits } => {
            change_policy(counter, |p| {
                p.plans.insert(name.clone(), limits.clone());
                Ok(())
            })
            .await
        }
        Action::RemovePlan { name } => {
            change_policy(counter, |p| {
                p.plans
                    .remove(&name)
                    .map(drop)
                    .ok_or_else(|| Error::NotFound(format!("no plan {name:?}")))
            })
            .await
        }
        Action::Assign {
            subject,
            plan,
            overrides,
        } => {
            let mut assignment = Assignment::plan(plan);
            assignment.overrides = parse_overrides(&overrides)?;
            change_policy(counter, |p| {
                p.subjects.insert(subject.clone(), assignment.clone());
                Ok(())
            })
            .await
        }
        Action::Unassign { subject } => {
            change_policy(counter, |p| {
                p.subjects
                    .remove(&subject)
                    .map(drop)
                    .ok_or_else(|| Error::NotFound(format!("subject {subject:?} is on no plan")))
            })
            .await
        }
        Action::Apply { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Failure::NotFound(format!("cannot read {}: {e}", file.display())))?;
            let policy = Policy::from_json(&text).map_err(usage_error)?;
            change_policy(counter, |p| {
                *p = policy.clone();
                Ok(())
            })
            .await
        }
    }?;
    let policy = &changed.policy;
    super::print(&format!(
        "policy version {}: {} limit{}, {} plan{}, {} subject{} on plans\n",
        changed.version,
        policy.limits.len(),
        plural(policy.limits.len()),
        policy.plans.len(),
        plural(policy.plans.len()),
        policy.subjects.len(),
        plural(policy.subjects.len()),
    ))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn parse_overrides(given: &[String]) -> Result<BTreeMap<String, u64>, Failure> {
    given
        .iter()
        .map(|text| {
            let (limit, amount) = text.split_once('=').ok_or_else(|| {
                Failure::Usage(format!(
                    "invalid --override {text:?}: expected LIMIT=AMOUNT"
                ))
            })?;
            let amount = amount.parse().map_err(|_| {
                Failure::Usage(format!(
                    "invalid --override {text:?}: the amount is a whole number of requests"
                ))
            })?;
            Ok((limit.to_owned(), amount))
        })
        .collect()
}
