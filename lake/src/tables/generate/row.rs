//! A generated row being filled, and what content modules fill it from.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ids::Refs;
use crate::tables::{Cell, TableDef};

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

    /// The filled cells, in the table's column order.
    pub(crate) fn into_cells(self) -> Vec<Cell> {
        self.cells
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

/// Everything a content module needs to fill a row or a transaction.
pub(crate) struct Context {
    pub def: &'static TableDef,
    pub rng: ChaCha8Rng,
    /// Ids of the things audit events refer to.
    pub refs: Refs,
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
