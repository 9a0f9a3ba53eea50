//! herald at its edge (docs/API.md §1, §2.1, §3): hostile input over every route
//! (`hostile`), control characters named or answered as unknown ids (`control`),
//! caller-chosen user ids across tenants (`tenants`), the invite link (`links`),
//! the limits per recipient and organization (`limits`), personal data in provider
//! replies (`masking`), and secure defaults (`defaults`).

mod attempts;
mod control;
mod defaults;
mod hostile;
mod limits;
mod links;
mod masking;
mod tenants;
