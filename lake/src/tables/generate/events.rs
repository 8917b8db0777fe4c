//! The audit event tables: logins, setting changes and object changes,
//! with the value sets of the seed's samples. A change is a transaction of
//! one or more rows sharing time, user, subject and `transactionid`,
//! numbered by `sequencenumber`.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::catalog::{
    account_name, charge_name, rate_plan_name, tier_name, ACCOUNTS, CHARGES, RATE_PLANS, TIERS,
};
use super::ids::{digest, IdSpace};
use super::row::{Context, Row};

/// Who logs in and changes things: (username, API user, weight).
const USERS: [(&str, bool, u32); 8] = [
    ("audit-trail@example.com", false, 30),
    ("zconnect.api.9439@example.com", true, 15),
    ("billing.admin@example.com", false, 15),
    ("finance.ops@example.com", false, 10),
    ("integration.bot@example.com", true, 10),
    ("jane.doe@example.com", false, 8),
    ("raj.patel@example.com", false, 7),
    ("li.wei@example.com", false, 5),
];

const BROWSERS: [(&str, &[&str], u32); 4] = [
    (
        "Chrome",
        &["76.0", "77.0", "78.0", "80.0", "86.0", "87.0"],
        60,
    ),
    ("Firefox", &["68.0", "70.0", "78.0", "83.0"], 20),
    ("Safari", &["12.1", "13.0", "14.0"], 12),
    ("Edge", &["18.0", "44.0", "87.0"], 8),
];

/// First octets of public-looking addresses.
const IP_FIRST_OCTETS: [u8; 8] = [67, 216, 103, 54, 98, 185, 34, 52];
/// Addresses each user usually logs in from.
const USUAL_IPS: usize = 4;

const TENANT_PROPERTIES: [&str; 4] = [
    "PROPERTY_DISALLOW_BLANK_ACCOUNTING_CODE",
    "PROPERTY_ENABLE_ACCOUNTING_PERIODS",
    "PROPERTY_ALLOW_NEGATIVE_INVOICE",
    "PROPERTY_REQUIRE_PO_NUMBER",
];
const BILLING_RULES: [(&str, [&str; 2]); 5] = [
    (
        "Enable credit back for removing or canceling one time charges?",
        ["false", "true"],
    ),
    (
        "When prorating a month, assume 30 days in a month or use actual days?",
        ["Assume30Days", "UseActualDays"],
    ),
    ("Support bill run auto-post?", ["true", "false"]),
    (
        "When prorating periods greater than a month, prorate by month first, or by day?",
        ["ProrateByDay", "ProrateByMonthFirst"],
    ),
    ("includeNegativeInvoice", ["false", "true"]),
];
const ROLES: [&str; 5] = [
    "Administrator",
    "Standard User",
    "Billing Ops",
    "Finance Viewer",
    "Support Agent",
];
const PERMISSIONS: [&str; 6] = [
    "ui",
    "apiWrite",
    "apiRead",
    "billRunCreate",
    "paymentRunCreate",
    "invoiceEdit",
];
const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];
const CHARGE_MODELS: [&str; 4] = [
    "Flat Fee Pricing",
    "Per Unit Pricing",
    "Tiered Pricing",
    "Volume Pricing",
];
const CHARGE_TYPES: [&str; 3] = ["OneTime", "Recurring", "Usage"];
const BILLING_PERIODS: [&str; 3] = ["Month", "Quarter", "Annual"];
const WORKFLOWS: [&str; 6] = [
    "Sample Workflow",
    "Invoice Reminder",
    "Usage Sync",
    "Dunning",
    "Account Cleanup",
    "Monthly Close",
];
/// Workflow ids are small numbers, as in the seed (`233`).
const WORKFLOW_IDS: u64 = 200;
const FIRST_WORKFLOW_ID: u64 = 200;

fn random_ip(rng: &mut ChaCha8Rng) -> String {
    let first = IP_FIRST_OCTETS[rng.gen_range(0..IP_FIRST_OCTETS.len())];
    format!(
        "{first}.{}.{}.{}",
        rng.gen_range(0..=255),
        rng.gen_range(0..=255),
        rng.gen_range(1..=254)
    )
}

fn pick_user(ctx: &mut Context) -> usize {
    let weights: Vec<(usize, u32)> = USERS.iter().enumerate().map(|(i, u)| (i, u.2)).collect();
    ctx.weighted(&weights)
}

/// A user's login tokens last a few hours: changes made in the same hours
/// carry the token of that login session.
const TOKEN_HOURS: i64 = 4;

/// The columns every event row has: who, with which login token, and when
/// (the creation's year, month and day in UTC too); never deleted.
fn event_row(ctx: &Context, user: usize, time: i64) -> Row {
    let user_id = ctx.refs.user.id(user as u64);
    let session = (time / (TOKEN_HOURS * 3_600_000)) as u64;
    let token = ctx
        .refs
        .token
        .id(session * USERS.len() as u64 + user as u64);
    let mut row = ctx.row();
    row.text("username", USERS[user].0)
        .text("userid", user_id.clone())
        .text("createdbyid", user_id)
        .text("tokenid", token)
        .time("timestamp", time)
        .time("createddate", time)
        .date_parts(time)
        .boolean("deleted", false);
    row
}

/// Login rows; each user logs in from a few usual addresses.
pub(crate) struct Logins {
    usual_ips: Vec<Vec<String>>,
}

impl Logins {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::from_seed(digest(seed, "users/ips"));
        let usual_ips = USERS
            .iter()
            .map(|_| (0..USUAL_IPS).map(|_| random_ip(&mut rng)).collect())
            .collect();
        Self { usual_ips }
    }

    pub(crate) fn row(&self, ctx: &mut Context, time: i64) -> Row {
        let user = pick_user(ctx);
        let api = USERS[user].1;
        let login_type = if api {
            ctx.weighted(&[("CLIENT_CREDENTIALS", 60), ("PASSWORD", 40)])
        } else {
            ctx.weighted(&[("PASSWORD", 88), ("SSO", 10), ("SWITCH_ENTITY_UI", 2)])
        };
        let status = if api {
            ctx.weighted(&[("Success", 97), ("AuthFail", 3)])
        } else {
            ctx.weighted(&[("Success", 88), ("AuthFail", 9), ("PasswordExpired", 3)])
        };
        let (browser, version) = if api {
            ("RestBiz", "0.0")
        } else {
            let weights: Vec<(usize, u32)> =
                BROWSERS.iter().enumerate().map(|(i, b)| (i, b.2)).collect();
            let (name, versions, _) = BROWSERS[ctx.weighted(&weights)];
            (name, ctx.pick(versions))
        };
        let ip = if ctx.rng.gen_ratio(85, 100) {
            self.usual_ips[user][ctx.rng.gen_range(0..USUAL_IPS)].clone()
        } else {
            random_ip(&mut ctx.rng)
        };
        let host = if api {
            ctx.pick(&["rest.zuora.com", "rest.apisandbox.zuora.com"])
        } else {
            ctx.pick(&["www.zuora.com", "apisandbox.zuora.com"])
        };
        let mut row = event_row(ctx, user, time);
        row.text("logintype", login_type)
            .text("status", status)
            .text("browsertype", browser)
            .text("browserversion", version)
            .text("ipaddress", ip)
            .text("hostname", host);
        row
    }
}

/// What a transaction changes: the setting or object, and its namespace.
struct Subject {
    /// `settingtype` or `objecttype`.
    kind: &'static str,
    /// `objectid` (object changes only).
    id: Option<String>,
    /// `settingobjectname` or `objectname`.
    name: String,
    namespace: &'static str,
}

/// One row of a transaction.
struct Change {
    action: &'static str,
    /// `attributename` or `attributeid`.
    attribute: Option<&'static str>,
    old: Option<String>,
    new: Option<String>,
}

impl Change {
    fn new(action: &'static str) -> Self {
        Self {
            action,
            attribute: None,
            old: None,
            new: None,
        }
    }

    fn set(action: &'static str, attribute: &'static str, new: impl Into<String>) -> Self {
        Self {
            attribute: Some(attribute),
            new: Some(new.into()),
            ..Self::new(action)
        }
    }

    fn update(attribute: &'static str, old: Option<String>, new: Option<String>) -> Self {
        Self {
            attribute: Some(attribute),
            old,
            new,
            ..Self::new("UPDATED")
        }
    }
}

/// The rows of one transaction.
struct Transaction<'a> {
    user: usize,
    time: i64,
    id: String,
    subject: &'a Subject,
}

impl Transaction<'_> {
    fn rows(&self, ctx: &Context, changes: Vec<Change>) -> Vec<Row> {
        let s = self.subject;
        changes
            .into_iter()
            .enumerate()
            .map(|(n, change)| {
                let mut row = event_row(ctx, self.user, self.time);
                row.text("action", change.action)
                    .text("settingtype", s.kind)
                    .text("objecttype", s.kind)
                    .opt_text("objectid", s.id.clone())
                    .text("settingobjectname", s.name.clone())
                    .text("objectname", s.name.clone())
                    .opt_text("attributename", change.attribute)
                    .opt_text("attributeid", change.attribute)
                    .text("namespace", s.namespace)
                    .opt_text("oldvalue", change.old)
                    .opt_text("newvalue", change.new)
                    .text("transactionid", self.id.clone())
                    .int("sequencenumber", n as i64 + 1);
                row
            })
            .collect()
    }
}

/// Two different values of `values`, in random order.
fn two_of(ctx: &mut Context, values: &[&str]) -> (String, String) {
    let picked = sample(&mut ctx.rng, values.len(), 2);
    (
        values[picked.index(0)].to_owned(),
        values[picked.index(1)].to_owned(),
    )
}

fn amount(ctx: &mut Context) -> String {
    format!(
        "{}.{:02}",
        ctx.rng.gen_range(0..5_000),
        ctx.rng.gen_range(0..100)
    )
}

/// A setting change transaction starting at row `i`.
pub(super) fn setting_change(
    ctx: &mut Context,
    time: i64,
    transactions: &IdSpace,
    i: u64,
) -> Vec<Row> {
    let user = pick_user(ctx);
    let kind = ctx.weighted(&[
        ("TenantProperty", 20),
        ("BillingRules", 30),
        ("User", 30),
        ("Role", 20),
    ]);
    let (name, namespace, changes) = match kind {
        "TenantProperty" => {
            let attribute = ctx.pick(&TENANT_PROPERTIES);
            let (old, new) = two_of(ctx, &["true", "false"]);
            let change = Change::update(attribute, Some(old), Some(new));
            (kind.to_owned(), "Tenant", vec![change])
        }
        "BillingRules" => {
            let count = ctx.rng.gen_range(1..=4);
            let rules = sample(&mut ctx.rng, BILLING_RULES.len(), count);
            let changes = rules
                .iter()
                .map(|r| {
                    let (attribute, values) = BILLING_RULES[r];
                    let (old, new) = two_of(ctx, &values);
                    Change::update(attribute, Some(old), Some(new))
                })
                .collect();
            (kind.to_owned(), "Billing", changes)
        }
        "User" => {
            let name = format!("{}+user@example.com", ctx.rng.gen_range(10_000..100_000));
            let changes = match ctx.weighted(&[
                ("roles", 40),
                ("UPDATED", 30),
                ("CREATED", 20),
                ("ADDED", 10),
            ]) {
                "roles" => {
                    let (old, new) = two_of(ctx, &ROLES);
                    vec![
                        Change {
                            attribute: Some("roles"),
                            old: Some(old),
                            ..Change::new("REMOVED_FROM_COLLECTION")
                        },
                        Change::set("ADDED_TO_COLLECTION", "roles", new),
                    ]
                }
                "UPDATED" => {
                    let (old, new) = two_of(ctx, &["Active", "Inactive"]);
                    vec![Change::update("status", Some(old), Some(new))]
                }
                "CREATED" => vec![Change::new("CREATED")],
                _ => vec![Change::set(
                    "ADDED_TO_COLLECTION",
                    "roles",
                    ctx.pick(&ROLES),
                )],
            };
            (name, "UserManagement", changes)
        }
        _ => {
            let name = if ctx.rng.gen_ratio(1, 2) {
                ctx.pick(&ROLES).to_owned()
            } else {
                format!("audit_{time}")
            };
            let changes = match ctx.weighted(&[
                ("CREATED", 20),
                ("UPDATED", 30),
                ("ADDED_TO_COLLECTION", 25),
                ("REMOVED_FROM_COLLECTION", 15),
                ("DELETED", 10),
            ]) {
                "UPDATED" => vec![Change::update(
                    "description",
                    Some("desc".into()),
                    Some("desc_update".into()),
                )],
                "ADDED_TO_COLLECTION" => vec![Change::set(
                    "ADDED_TO_COLLECTION",
                    "permissions",
                    ctx.pick(&PERMISSIONS),
                )],
                "REMOVED_FROM_COLLECTION" => vec![Change {
                    attribute: Some("permissions"),
                    old: Some(ctx.pick(&PERMISSIONS).to_owned()),
                    ..Change::new("REMOVED_FROM_COLLECTION")
                }],
                action => vec![Change::new(action)],
            };
            (name, "UserManagement", changes)
        }
    };
    let subject = Subject {
        kind,
        id: None,
        name,
        namespace,
    };
    let transaction = Transaction {
        user,
        time,
        id: transactions.id(i),
        subject: &subject,
    };
    transaction.rows(ctx, changes)
}

/// An object change transaction starting at row `i` (deleting an account
/// is two: its status goes to Canceled, then it is deleted, as the seed
/// notes).
pub(super) fn object_change(
    ctx: &mut Context,
    time: i64,
    transactions: &IdSpace,
    i: u64,
) -> Vec<Row> {
    let user = pick_user(ctx);
    let kind = ctx.weighted(&[
        ("Account", 40),
        ("ProductRatePlan", 12),
        ("ProductRatePlanCharge", 12),
        ("ProductRatePlanChargeTier", 12),
        ("WorkflowVersion", 24),
    ]);
    let action = ctx.weighted(&[("UPDATED", 60), ("CREATED", 30), ("DELETED", 10)]);
    let refs = &ctx.refs;
    let (subject, changes) = match kind {
        "Account" => {
            let k = ctx.rng.gen_range(0..ACCOUNTS);
            let (bill_to, sold_to) = (refs.contact.id(2 * k), refs.contact.id(2 * k + 1));
            let subject = Subject {
                kind,
                id: Some(refs.account.id(k)),
                name: account_name(k),
                namespace: "Billing",
            };
            let changes = match action {
                "CREATED" => vec![
                    Change::set("CREATED", "Name", subject.name.clone()),
                    Change::set("CREATED", "BillToId", bill_to),
                    Change::set("CREATED", "SoldToId", sold_to),
                    Change::set("CREATED", "Currency", ctx.pick(&CURRENCIES)),
                    Change::set("CREATED", "Status", "Active"),
                ],
                "UPDATED" => {
                    let count = ctx.rng.gen_range(1..=3);
                    sample(&mut ctx.rng, 6, count)
                        .iter()
                        .map(|field| match field {
                            0 => Change::update("Mrr", None, Some(amount(ctx))),
                            1 => Change::update(
                                "TotalDebitMemoBalance",
                                None,
                                Some("0.000000000".into()),
                            ),
                            2 => Change::update("Balance", Some(amount(ctx)), Some(amount(ctx))),
                            3 => Change::update(
                                "BillToId",
                                Some(bill_to.clone()),
                                Some(sold_to.clone()),
                            ),
                            4 => Change::update(
                                "SoldToId",
                                Some(sold_to.clone()),
                                Some(bill_to.clone()),
                            ),
                            _ => Change::update(
                                "CustomerServiceRepName",
                                None,
                                Some(USERS[pick_user(ctx)].0.to_owned()),
                            ),
                        })
                        .collect()
                }
                _ => {
                    let cancel = Transaction {
                        user,
                        time,
                        id: transactions.id(i),
                        subject: &subject,
                    };
                    let change =
                        Change::update("Status", Some("Active".into()), Some("Canceled".into()));
                    let mut rows = cancel.rows(ctx, vec![change]);
                    let delete = Transaction {
                        id: transactions.id(i + 1),
                        ..cancel
                    };
                    rows.extend(delete.rows(ctx, vec![Change::new("DELETED")]));
                    return rows;
                }
            };
            (subject, changes)
        }
        "ProductRatePlan" => {
            let k = ctx.rng.gen_range(0..RATE_PLANS);
            let subject = Subject {
                kind,
                id: Some(refs.rate_plan.id(k)),
                name: rate_plan_name(k),
                namespace: "Catalog",
            };
            let changes = match action {
                "CREATED" => vec![
                    Change::set("CREATED", "Name", subject.name.clone()),
                    Change::set("CREATED", "ProductId", refs.product.id(k / 3)),
                    Change::set("CREATED", "EffectiveStartDate", "2020-01-01"),
                    Change::set("CREATED", "EffectiveEndDate", "2021-11-19"),
                ],
                "UPDATED" => vec![Change::update(
                    "ActiveCurrencies",
                    None,
                    Some(ctx.pick(&CURRENCIES).to_owned()),
                )],
                _ => vec![Change::new("DELETED")],
            };
            (subject, changes)
        }
        "ProductRatePlanCharge" => {
            let k = ctx.rng.gen_range(0..CHARGES);
            let rate_plan = refs.rate_plan.id(k / 3);
            let subject = Subject {
                kind,
                id: Some(refs.charge.id(k)),
                name: charge_name(k),
                namespace: "Catalog",
            };
            let changes = match action {
                "CREATED" => vec![
                    Change::set("CREATED", "ChargeModel", ctx.pick(&CHARGE_MODELS)),
                    Change::set("CREATED", "ChargeType", ctx.pick(&CHARGE_TYPES)),
                    Change::set("CREATED", "LegacyRevenueReporting", "false"),
                    Change::set("CREATED", "ProductRatePlanId", rate_plan),
                ],
                "UPDATED" => {
                    let (old, new) = two_of(ctx, &BILLING_PERIODS);
                    vec![Change::update("BillingPeriod", Some(old), Some(new))]
                }
                _ => vec![Change::new("DELETED")],
            };
            (subject, changes)
        }
        "ProductRatePlanChargeTier" => {
            let k = ctx.rng.gen_range(0..TIERS);
            let subject = Subject {
                kind,
                id: Some(refs.tier.id(k)),
                name: tier_name(k),
                namespace: "Catalog",
            };
            let changes = match action {
                "CREATED" => vec![
                    Change::set("CREATED", "ProductRatePlanChargeId", refs.charge.id(k / 2)),
                    Change::set("CREATED", "IsOveragePrice", "false"),
                    Change::set("CREATED", "StartingUnit", "0.000000000"),
                    Change::set("CREATED", "Price", amount(ctx)),
                ],
                "UPDATED" => vec![Change::update(
                    "Price",
                    Some(amount(ctx)),
                    Some(amount(ctx)),
                )],
                _ => vec![Change::new("DELETED")],
            };
            (subject, changes)
        }
        _ => {
            let w = ctx.rng.gen_range(0..WORKFLOW_IDS);
            let name = WORKFLOWS[(w % WORKFLOWS.len() as u64) as usize];
            let subject = Subject {
                kind,
                id: Some((FIRST_WORKFLOW_ID + w).to_string()),
                name: name.to_owned(),
                namespace: "Workflow",
            };
            let changes = match action {
                "CREATED" => vec![
                    Change::set("CREATED", "name", name),
                    Change::set("CREATED", "priority", ctx.pick(&["Low", "Medium", "High"])),
                    Change::set("CREATED", "call_type", ctx.pick(&["ASYNC", "SYNC"])),
                    Change::set("CREATED", "callout_trigger", ctx.pick(&["true", "false"])),
                ],
                "UPDATED" => {
                    let (old, new) = two_of(ctx, &["true", "false"]);
                    vec![Change::update("callout_trigger", Some(old), Some(new))]
                }
                _ => vec![Change::new("DELETED")],
            };
            (subject, changes)
        }
    };
    let transaction = Transaction {
        user,
        time,
        id: transactions.id(i),
        subject: &subject,
    };
    transaction.rows(ctx, changes)
}
