//! The dashboard's live parts: a source's live state in its row ("live",
//! "reconnecting" with the reason and the next try, "polling", "held"…,
//! and its last change), and the webhooks' deliveries (cursor, lag,
//! failures, the last error and the next try).

use maud::{html, Markup};

use crate::serve::hooks::HookStatus;
use crate::serve::live::{LiveState, LiveStatus};

/// The live state of one source, for its row (nothing when it is off).
pub fn live_cell(s: Option<&LiveStatus>) -> Markup {
    let Some(s) = s.filter(|s| s.state != LiveState::Off) else { return html! {} };
    let class = match s.state {
        LiveState::Live | LiveState::Polling | LiveState::Standby => "badge ok",
        _ => "badge failed",
    };
    html! {
        span class=(class) title=(s.reason.as_deref().unwrap_or_default()) { (s.state.as_str()) }
        @if let Some(c) = &s.channel { " " span.mono { (c) } }
        @if let Some(r) = s.reason.as_deref().filter(|_| s.state != LiveState::Live) { br; span.error { (r) } }
        @if let Some(t) = s.next_try { br; "next try " (t.to_string()) }
        @if let Some(t) = s.last_change { br; "last change " (t.to_string()) }
        br;
    }
}

/// The webhooks' section (nothing without webhooks).
pub fn webhooks_section(hooks: &[HookStatus]) -> Markup {
    if hooks.is_empty() {
        return html! {};
    }
    html! {
        section {
            h2 { "Webhooks" }
            table {
                thead { tr { th { "Webhook" } th { "URL" } th { "Delivered up to" } th { "Waiting" } th { "Last delivery" } th { "Failures" } } }
                tbody {
                    @for h in hooks {
                        tr {
                            td { strong { (h.name) } " " span.badge { (h.state) } }
                            td.mono { (h.url) }
                            td { (h.cursor) }
                            td { (h.lag) " changes" }
                            td { @if let Some(t) = h.last_delivery { (t.to_string()) } @else { "never" } }
                            td {
                                (h.failures)
                                @if let Some(e) = &h.last_error { br; span.error { (e) } }
                                @if let Some(t) = h.next_try { br; "next try " (t.to_string()) }
                            }
                        }
                    }
                }
            }
        }
    }
}
