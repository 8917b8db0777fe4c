//! The reference tables the seed's sample queries join (contacts and the
//! product catalog), and the ids and names audit events use for them.
//!
//! A reference row depends on the seed and its index only, so the objects
//! that generated audit events point at (index below [`REFERENCED_ROWS`])
//! exist once those tables are generated with enough rows.

use rand::Rng;

use super::row::{Context, Row};

/// Accounts that audit events change; each has two contacts (bill-to and
/// sold-to), `2k` and `2k + 1`.
pub(crate) const ACCOUNTS: u64 = 1_000;
/// Products, each with three rate plans, each with three charges, each
/// with two tiers.
pub(crate) const PRODUCTS: u64 = 100;
pub(crate) const RATE_PLANS: u64 = PRODUCTS * 3;
pub(crate) const CHARGES: u64 = RATE_PLANS * 3;
pub(crate) const TIERS: u64 = CHARGES * 2;

/// Rows of each reference table that generated audit events refer to:
/// generate at least this many so every reference resolves.
pub const REFERENCED_ROWS: [(&str, u64); 5] = [
    ("contact", ACCOUNTS * 2),
    ("product", PRODUCTS),
    ("productrateplan", RATE_PLANS),
    ("productrateplancharge", CHARGES),
    ("productrateplanchargetier", TIERS),
];

const COMPANIES: [&str; 10] = [
    "Acme Corp",
    "Oscorp",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Industries",
    "Soylent",
];
const FIRST_NAMES: [&str; 12] = [
    "John", "Jane", "Tony", "Nick", "Maria", "Wei", "Raj", "Olga", "Ahmed", "Sofia", "Kenji",
    "Amara",
];
const LAST_NAMES: [&str; 12] = [
    "Doe", "Stark", "Fury", "Garcia", "Li", "Patel", "Ivanova", "Hassan", "Rossi", "Tanaka",
    "Okafor", "Smith",
];
const PRODUCT_NAMES: [&str; 10] = [
    "Test",
    "Cloud Storage",
    "API Platform",
    "Analytics Suite",
    "Premium Support",
    "Data Warehouse",
    "Messaging",
    "Video Streaming",
    "Security Pack",
    "IoT Connect",
];
const RATE_PLAN_NAMES: [&str; 3] = ["New Rate Plan", "Monthly Plan", "Annual Plan"];
const CHARGE_NAMES: [&str; 3] = ["One-time charge", "Monthly, recurring", "Usage charge"];

/// `Acme Corp 1`, `Oscorp 1`, ... `Acme Corp 2`, ...
pub(crate) fn account_name(k: u64) -> String {
    let n = COMPANIES.len() as u64;
    format!("{} {}", COMPANIES[(k % n) as usize], k / n + 1)
}

fn numbered(names: &[&str], k: u64) -> String {
    let n = names.len() as u64;
    let name = names[(k % n) as usize];
    match k / n {
        0 => name.to_owned(),
        round => format!("{name} {}", round + 1),
    }
}

pub(crate) fn product_name(k: u64) -> String {
    numbered(&PRODUCT_NAMES, k)
}

pub(crate) fn rate_plan_name(k: u64) -> String {
    RATE_PLAN_NAMES[(k % 3) as usize].to_owned()
}

pub(crate) fn charge_name(k: u64) -> String {
    CHARGE_NAMES[(k % 3) as usize].to_owned()
}

/// A tier's name is its number within its charge.
pub(crate) fn tier_name(k: u64) -> String {
    (k % 2 + 1).to_string()
}

pub(super) fn contact(ctx: &mut Context, i: u64) -> Row {
    let first = ctx.pick(&FIRST_NAMES);
    let last = ctx.pick(&LAST_NAMES);
    let email = format!(
        "{}.{}{i}@example.com",
        first.to_ascii_lowercase(),
        last.to_ascii_lowercase()
    );
    let mut row = ctx.row();
    row.text("firstname", first)
        .text("lastname", last)
        .text("workemail", email)
        .text("accountid", ctx.refs.account.id(i / 2));
    row
}

pub(super) fn product(ctx: &mut Context, i: u64) -> Row {
    let mut row = ctx.row();
    row.text("name", product_name(i));
    row
}

pub(super) fn rate_plan(ctx: &mut Context, i: u64) -> Row {
    let mut row = ctx.row();
    row.text("name", rate_plan_name(i))
        .text("productid", ctx.refs.product.id(i / 3));
    row
}

pub(super) fn charge(ctx: &mut Context, i: u64) -> Row {
    let mut row = ctx.row();
    row.text("name", charge_name(i))
        .text("productrateplanid", ctx.refs.rate_plan.id(i / 3));
    row
}

pub(super) fn tier(ctx: &mut Context, i: u64) -> Row {
    let price = format!("{}.00", ctx.rng.gen_range(0..500) * 5);
    let mut row = ctx.row();
    row.text("productrateplanchargeid", ctx.refs.charge.id(i / 2))
        .text("tier", tier_name(i))
        .text("price", price);
    row
}
