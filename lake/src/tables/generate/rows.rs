//! The stream of generated rows of one table: ids, times, and the cells
//! the table's content module fills in.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ids::{digest, IdSpace, Refs};
use super::row::{Context, Row};
use super::{catalog, events};
use crate::tables::{Cell, ColumnType, TableDef};

/// Generated times spread over 2019-01-01T00:00:00Z .. 2021-01-01T00:00:00Z.
const FROM_MS: i64 = 1_546_300_800_000;
const TO_MS: i64 = 1_609_459_200_000;

/// What is generated for a table.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Login,
    SettingChange,
    ObjectChange,
    Contact,
    Product,
    RatePlan,
    Charge,
    Tier,
    /// A table this module has no content for: values by column type.
    Other,
}

impl Kind {
    fn of(def: &TableDef) -> Kind {
        match def.name {
            "auditloginevent" => Kind::Login,
            "auditsettingchangeevent" => Kind::SettingChange,
            "auditobjectchangeevent" => Kind::ObjectChange,
            "contact" => Kind::Contact,
            "product" => Kind::Product,
            "productrateplan" => Kind::RatePlan,
            "productrateplancharge" => Kind::Charge,
            "productrateplanchargetier" => Kind::Tier,
            _ => Kind::Other,
        }
    }

    fn is_event(self) -> bool {
        matches!(self, Kind::Login | Kind::SettingChange | Kind::ObjectChange)
    }
}

/// Generates the rows of one table in order; event tables in time order,
/// several rows of one transaction sharing its time and transaction id.
pub(crate) struct TableRows {
    kind: Kind,
    rows: u64,
    next: u64,
    span_ms: u128,
    ctx: Context,
    row_ids: IdSpace,
    event_ids: IdSpace,
    transaction_ids: IdSpace,
    logins: events::Logins,
    /// Rows of the current transaction not yet handed out.
    pending: VecDeque<Row>,
}

impl TableRows {
    pub(crate) fn new(def: &'static TableDef, rows: u64, seed: u64) -> Self {
        let kind = Kind::of(def);
        // Event ids depend on the row count too, so generating a table
        // again with another count adds rows instead of repeating ids.
        // Reference rows are the same for any count: audit events point at
        // them by index.
        let space = if kind.is_event() {
            format!("{}/{rows}", def.name)
        } else {
            def.name.to_owned()
        };
        let rng = ChaCha8Rng::from_seed(digest(seed, &format!("{space}/rows")));
        let ctx = Context {
            def,
            rng,
            refs: Refs::new(seed),
        };
        Self {
            kind,
            rows,
            next: 0,
            span_ms: (TO_MS - FROM_MS) as u128,
            row_ids: IdSpace::new(seed, &space),
            event_ids: IdSpace::new(seed, &format!("{space}/event")),
            transaction_ids: IdSpace::new(seed, &format!("{space}/transaction")),
            ctx,
            logins: events::Logins::new(seed),
            pending: VecDeque::new(),
        }
    }

    /// Row `i`'s time: rows spread evenly with a little jitter that never
    /// reorders them.
    fn time_of(&mut self, i: u64) -> i64 {
        let position = (u128::from(i) << 16) | u128::from(self.ctx.rng.gen::<u16>());
        FROM_MS + (position * self.span_ms / (u128::from(self.rows) << 16)) as i64
    }

    /// The rows starting at index `i`: one, or a transaction of several.
    fn make(&mut self, i: u64) -> Vec<Row> {
        let time = match self.kind {
            Kind::Login | Kind::SettingChange | Kind::ObjectChange | Kind::Other => self.time_of(i),
            _ => 0,
        };
        let ctx = &mut self.ctx;
        match self.kind {
            Kind::Login => vec![self.logins.row(ctx, time)],
            Kind::SettingChange => events::setting_change(ctx, time, &self.transaction_ids, i),
            Kind::ObjectChange => events::object_change(ctx, time, &self.transaction_ids, i),
            Kind::Contact => vec![catalog::contact(ctx, i)],
            Kind::Product => vec![catalog::product(ctx, i)],
            Kind::RatePlan => vec![catalog::rate_plan(ctx, i)],
            Kind::Charge => vec![catalog::charge(ctx, i)],
            Kind::Tier => vec![catalog::tier(ctx, i)],
            Kind::Other => vec![other(ctx, time, i)],
        }
    }
}

/// A row of a table without content of its own: values by column type.
fn other(ctx: &mut Context, time: i64, i: u64) -> Row {
    let mut row = ctx.row();
    for (name, ty) in ctx.def.columns {
        match ty {
            ColumnType::Text => row.text(name, format!("{name}-{}", ctx.rng.gen_range(0..1000))),
            ColumnType::Timestamp => row.time(name, time),
            ColumnType::Integer => row.int(name, i as i64),
            ColumnType::Int32 => row.int(name, (i % 28) as i64 + 1),
            ColumnType::Boolean => row.boolean(name, false),
        };
    }
    row
}

impl Iterator for TableRows {
    type Item = Vec<Cell>;

    fn next(&mut self) -> Option<Vec<Cell>> {
        if self.next >= self.rows {
            return None;
        }
        let i = self.next;
        if self.pending.is_empty() {
            let rows = self.make(i);
            self.pending.extend(rows);
        }
        self.next += 1;
        let mut row = self.pending.pop_front().expect("a transaction has rows");
        row.text("id", self.row_ids.id(i));
        if self.kind.is_event() {
            row.text("eventid", self.event_ids.id(i));
        }
        if matches!(self.kind, Kind::Login) {
            // A login is one record: its own sequence number.
            row.int("sequencenumber", i as i64 + 1);
        }
        if !self.kind.is_event() {
            row.boolean("deleted", false);
        }
        Some(row.into_cells())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.rows - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}
