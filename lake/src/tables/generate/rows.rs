//! The stream of generated rows of one table: ids, times, and the cells
//! the table's content module fills in.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::{catalog, events};
use crate::tables::{Cell, ColumnType, TableDef};

/// Generated times spread over 2019-01-01T00:00:00Z .. 2021-01-01T00:00:00Z.
const FROM_MS: i64 = 1_546_300_800_000;
const TO_MS: i64 = 1_609_459_200_000;

/// The splitmix64 finalizer: a bijection of u64, so distinct inputs give
/// distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn digest(seed: u64, name: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(seed.to_le_bytes());
    hash.update(name.as_bytes());
    hash.finalize().into()
}

/// Ids of one kind of thing (the rows of a table, accounts, contacts...):
/// `gen-` and 32 hex digits, unique per index within the space. The
/// `gen-` prefix keeps them apart from the ids clients ingest (Zuora ids
/// are 32 hex digits), since generate does not record its ids in the
/// ingest id set.
#[derive(Clone, Debug)]
pub(crate) struct IdSpace {
    key: u64,
    salt: u64,
}

impl IdSpace {
    pub(crate) fn new(seed: u64, kind: &str) -> Self {
        let d = digest(seed, kind);
        let word = |i: usize| u64::from_le_bytes(d[i..i + 8].try_into().expect("8 bytes"));
        Self {
            key: word(0),
            salt: word(8),
        }
    }

    pub(crate) fn id(&self, index: u64) -> String {
        let low = mix(index ^ self.key);
        let high = mix(low ^ self.salt);
        format!("gen-{high:016x}{low:016x}")
    }
}

/// A row being filled, by column name; columns left alone stay NULL and
/// names the table lacks are ignored (content serves related tables).
pub(crate) struct Row {
    def: &'static TableDef,
    cells: Vec<Cell>,
}

impl Row {
    pub(crate) fn new(def: &'static TableDef) -> Self {
        Self {
            def,
            cells: vec![Cell::Null; def.columns.len()],
        }
    }

    fn set(&mut self, name: &str, cell: Cell) {
        if let Some(i) = self.def.columns.iter().position(|(n, _)| *n == name) {
            self.cells[i] = cell;
        }
    }

    pub(crate) fn text(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.set(name, Cell::Text(value.into()));
        self
    }

    pub(crate) fn opt_text(&mut self, name: &str, value: Option<impl Into<String>>) -> &mut Self {
        if let Some(value) = value {
            self.text(name, value);
        }
        self
    }

    pub(crate) fn time(&mut self, name: &str, ms: i64) -> &mut Self {
        self.set(name, Cell::Time(ms));
        self
    }

    pub(crate) fn int(&mut self, name: &str, n: i64) -> &mut Self {
        self.set(name, Cell::Int(n));
        self
    }

    pub(crate) fn boolean(&mut self, name: &str, value: bool) -> &mut Self {
        self.set(name, Cell::Bool(value));
        self
    }

    /// `year`, `month` and `day` of `ms` (UTC).
    pub(crate) fn date_parts(&mut self, ms: i64) -> &mut Self {
        use chrono::Datelike;
        let date = chrono::DateTime::from_timestamp_millis(ms)
            .expect("generated times are in range")
            .date_naive();
        self.int("year", i64::from(date.year()))
            .int("month", i64::from(date.month()))
            .int("day", i64::from(date.day()))
    }
}

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

/// Everything a content module needs to fill a row or a transaction.
pub(crate) struct Context {
    pub def: &'static TableDef,
    pub rng: ChaCha8Rng,
    /// Ids of the things audit events refer to.
    pub refs: catalog::Refs,
}

impl Context {
    pub(crate) fn row(&self) -> Row {
        Row::new(self.def)
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.gen_range(0..items.len())]
    }

    /// Picks by weight from `(item, weight)` pairs.
    pub(crate) fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut ticket = self.rng.gen_range(0..total);
        for (item, weight) in items {
            if ticket < *weight {
                return *item;
            }
            ticket -= weight;
        }
        unreachable!("tickets are below the total weight")
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
            refs: catalog::Refs::new(seed),
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
        Some(row.cells)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.rows - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_unique_prefixed_hex() {
        let space = IdSpace::new(7, "contact");
        let ids: HashSet<String> = (0..100_000).map(|i| space.id(i)).collect();
        assert_eq!(ids.len(), 100_000);
        let id = space.id(0);
        assert_eq!(id.len(), 36);
        assert!(id.starts_with("gen-"));
        assert!(id[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(IdSpace::new(8, "contact").id(0), id);
        assert_ne!(IdSpace::new(7, "product").id(0), id);
    }
}
