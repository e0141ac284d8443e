//! The closure saga, pure: what to do next for one tenant, decided from its
//! recorded history alone.
//!
//! - [`Event`]s (past tense, versioned) fold into a [`State`] through [`apply`]
//!   (no business logic);
//! - [`decide`] turns a state and the time into [`Action`]s: events to record
//!   (intents, schedules), external [`Call`]s to perform, or a time to wake up;
//! - operator [`Command`]s become events through [`handle`];
//! - [`State::status`] answers `closeout status`, [`plan`] `closeout plan`.
//!
//! Nothing here does I/O or reads the clock (`tests/saga_purity.rs` checks):
//! the runtime performs calls (`runtime::perform`) and passes the time in.
//! Replaying a saga is folding its events; it performs nothing.

mod action;
pub mod closure;
mod command;
mod compensate;
mod decide;
mod event;
pub mod keep;
mod notice;
pub mod permissions;
mod plan;
mod policy;
pub mod preflight;
mod required;
pub mod stake;
mod state;
mod status;
mod steps;
pub mod subscriptions;
mod view;

pub use action::{Action, Call, Decision, Read};
pub use command::{handle, Command, Refusal};
pub use decide::{actions, decide, jitter_unit, window, INTENT_WINDOW};
pub use event::{
    Change, Event, Gate, IdentitySource, InventoryParts, EVENT_VERSION, INVENTORY_PART_USERS,
    SECURITY_DEFAULTS,
};
pub use notice::{Notice, NoticeKind, Notices, Told};
pub use plan::{check_keep, plan, Plan};
pub use policy::{FailurePolicy, SagaPolicy};
pub use required::{
    failing_preconditions, ActionRequired, SubscriptionAction, ADMIN_CENTER, ENTRA_ADMIN_CENTER,
};
pub use state::{
    apply, apply_at, fold, fold_at, table_of, Course, Ending, Header, NotStarted, Observed, State,
    Target, Wait, STATE_VERSION,
};
pub use status::{Progress, SagaState, SagaStatus};
pub use view::{Inventory, MfaView, SubscriptionRef, TenantView, UserRef};
