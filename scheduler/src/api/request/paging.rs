//! Paging of the list routes: which items a page holds (`page` is
//! 1-based; each route's parameter struct has its own default and largest
//! `pageSize`).

use std::ops::Range;

/// One page of a list of `total` items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageWindow {
    pub items: Range<usize>,
    pub previous_page: Option<u32>,
    pub next_page: Option<u32>,
}

/// Which items page `page` (1-based) holds and its neighbours. A page past
/// the end is empty; its previous page is the last one with items.
pub fn page_window(total: usize, page: u32, page_size: u32) -> PageWindow {
    let size = page_size as usize;
    let last_page = total.div_ceil(size).max(1);
    let start = (page as usize - 1).saturating_mul(size).min(total);
    let end = start.saturating_add(size).min(total);
    PageWindow {
        items: start..end,
        previous_page: (page > 1).then(|| (page as usize - 1).min(last_page) as u32),
        next_page: ((page as usize) < last_page).then(|| page + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_their_neighbours() {
        let window = |total, page, size| page_window(total, page, size);
        assert_eq!(
            window(0, 1, 30),
            PageWindow {
                items: 0..0,
                previous_page: None,
                next_page: None
            }
        );
        assert_eq!(
            window(65, 1, 30),
            PageWindow {
                items: 0..30,
                previous_page: None,
                next_page: Some(2)
            }
        );
        assert_eq!(
            window(65, 2, 30),
            PageWindow {
                items: 30..60,
                previous_page: Some(1),
                next_page: Some(3)
            }
        );
        assert_eq!(
            window(65, 3, 30),
            PageWindow {
                items: 60..65,
                previous_page: Some(2),
                next_page: None
            }
        );
        assert_eq!(
            window(60, 2, 30),
            PageWindow {
                items: 30..60,
                previous_page: Some(1),
                next_page: None
            }
        );
        assert_eq!(
            window(65, 9, 30),
            PageWindow {
                items: 65..65,
                previous_page: Some(3),
                next_page: None
            }
        );
        assert_eq!(
            window(5, u32::MAX, 100),
            PageWindow {
                items: 5..5,
                previous_page: Some(1),
                next_page: None
            }
        );
    }
}
