//! Runs one export: reads the log through a [`Log`], selects with a
//! [`Filter`] and writes one of the formats. jsonl follows the order of the
//! log; text, csv and html go saga by saga (in start order), so that the joins
//! of intents and outcomes only ever hold one saga's open changes.

use super::summary::Summary;
use super::{csv::CsvWriter, html, jsonl, text, Error, Filter, Log, SagaInfo};
use std::io::Write;

/// The output formats of `closeout audit`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Per saga, a summary, then a readable timeline (one line per change).
    Text,
    /// One JSON object per event (the jsonl contract in the README).
    Jsonl,
    /// One row per external change (objects named beside their ids).
    Csv,
    /// A self-contained HTML report: a batch overview, then per saga a
    /// summary, an SVG timeline and its changes.
    Html,
    /// A printable HTML closure receipt of one saga (`--saga`), with the
    /// hash the log must still hold.
    Receipt,
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sagas the filter selected for the export.
    pub sagas: u64,
    /// Entries (jsonl lines, text lines) or changes (csv, html rows) written.
    pub items: u64,
}

/// Writes the selected part of `log` to `out` in `format`.
pub fn export(
    log: &dyn Log,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<Stats, Error> {
    let io = |e| Error::io("-", e);
    let mut stats = Stats::default();
    if format == Format::Jsonl {
        let entries = match &filter.saga {
            Some(id) => log.saga_entries(id),
            None => log.entries_with(super::source::Want::EXPORT),
        };
        let mut buf = Vec::with_capacity(1 << 12);
        for e in entries {
            let e = e?;
            if filter.matches(&e) {
                buf.clear();
                jsonl::encode(&mut buf, &e).map_err(io)?;
                out.write_all(&buf).map_err(io)?;
                stats.items += 1;
            }
        }
        return Ok(stats);
    }
    if format == Format::Receipt {
        let Some(id) = &filter.saga else {
            return Err(Error::Filter(
                "--format receipt is of one saga: give --saga ID".into(),
            ));
        };
        let sagas = selected_sagas(log, filter)?;
        let saga = sagas
            .into_iter()
            .next()
            .ok_or_else(|| Error::UnknownSaga(id.clone()))?;
        super::receipt::write(out, log, &saga)?;
        stats.sagas = 1;
        return Ok(stats);
    }
    let sagas = selected_sagas(log, filter)?;
    stats.sagas = sagas.len() as u64;
    match format {
        Format::Text => {
            for s in &sagas {
                stats.items += text::write_saga(out, log, s, filter)?;
            }
        }
        Format::Csv => {
            let mut w = CsvWriter::new(&mut *out).map_err(io)?;
            for s in &sagas {
                let (names, _) = super::summary::names_of(log, &s.saga_id)?;
                let mut joiner = super::changes::Joiner::new();
                for e in log.saga_entries(&s.saga_id) {
                    if let Some(c) = joiner.push(&e?, filter) {
                        w.write(&c, &names).map_err(io)?;
                        stats.items += 1;
                    }
                }
                for c in joiner.finish_saga() {
                    w.write(&c, &names).map_err(io)?;
                    stats.items += 1;
                }
            }
            w.finish().map_err(io)?;
        }
        Format::Html => {
            html::write_header(out, "closeout audit report").map_err(io)?;
            html::write_anchor(out, log.head().as_ref()).map_err(io)?;
            if sagas.is_empty() {
                out.write_all(b"<p>No saga matches the selection.</p>\n")
                    .map_err(io)?;
            }
            // Summaries are small (bounded lists): all of them are held for
            // the overview, each saga's events are read again for its table.
            let mut summaries = Vec::with_capacity(sagas.len());
            for s in &sagas {
                let (names, inventory) = super::summary::names_of(log, &s.saga_id)?;
                let mut summary = Summary::build(log, s, &names, inventory.as_ref())?;
                // The report lists users in each saga's change table, not in
                // its summary: a batch's summaries need not hold them.
                summary.users_deleted = Vec::new();
                summaries.push(summary);
            }
            let overview = summaries.len() > 1;
            if overview {
                html::write_overview(out, &summaries).map_err(io)?;
            }
            html::write_legend(out).map_err(io)?;
            for (s, summary) in sagas.iter().zip(&summaries) {
                stats.items += html::write_saga(out, log, s, summary, filter)?;
            }
            if overview {
                html::write_script(out).map_err(io)?;
            }
            html::write_footer(out).map_err(io)?;
        }
        Format::Jsonl | Format::Receipt => {}
    }
    Ok(stats)
}

/// The sagas the filter can select from; an unknown `--saga` is an error.
fn selected_sagas(log: &dyn Log, filter: &Filter) -> Result<Vec<SagaInfo>, Error> {
    let sagas: Vec<SagaInfo> = log
        .sagas()?
        .into_iter()
        .filter(|s| filter.wants_saga(&s.saga_id, &s.tenant_id))
        .collect();
    if let Some(id) = &filter.saga {
        if sagas.is_empty() && !log.sagas()?.iter().any(|s| &s.saga_id == id) {
            return Err(Error::UnknownSaga(id.clone()));
        }
    }
    Ok(sagas)
}
