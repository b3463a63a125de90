//! A promo actor across occurrences: its stock follows the occurrence the
//! promo counts now ([`FlashPromo::counted_start`]). The registry's `Close`
//! at an occurrence's end and its `Redefine` at the next one's start move
//! it on, and so does the first reserve of an occurrence if it arrives
//! first; holds of the occurrence left behind keep their own expiry. New
//! terms that move the start of the occurrence running now re-key it.

use actix::prelude::*;
use chrono::Utc;

use super::PromoActor;
use crate::domain::occurrence_stock::StockTerms;
use crate::domain::promo::FlashPromo;

impl PromoActor {
    /// Moves the stock on to the occurrence the promo counts now (a new
    /// occurrence starts with fresh stock) and reports it if it moved.
    pub(super) fn follow_occurrence(&mut self, ctx: &mut Context<Self>) {
        let counted = self.promo.counted_start(Utc::now());
        if self.stock.roll_to(counted) {
            self.report(ctx);
        }
    }
}

impl PromoActor {
    /// New terms moved the start of the occurrence running now: the same
    /// occurrence under a new key (the write re-keyed its rows), so its
    /// stock moves with it instead of starting afresh.
    pub(super) fn follow_rekey(&mut self, promo: &FlashPromo) {
        let moved = self
            .promo
            .schedule()
            .rekeyed_at(&promo.schedule(), Utc::now());
        if let Some((from, to)) = moved {
            self.stock.rekey(from, to);
        }
    }
}

/// How the stock of `promo`, as read from the database, is rebuilt.
pub(super) fn stock_terms(promo: &FlashPromo) -> StockTerms {
    StockTerms {
        continuous: promo.daily_window.is_none(),
        quantity: promo.quantity,
        current: promo.counted_start(Utc::now()),
        sold: promo.sold,
        sold_total: promo.sold_total,
    }
}
