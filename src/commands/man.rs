//! `tarun man`: the man pages, in roff, generated from the same clap definition as `--help`:
//! tarun(1) with the subcommands, the exit codes and the environment variables, and one
//! tarun-SUBCOMMAND(1) per visible subcommand (tarun-data-info(1) for a nested one), as the
//! subcommand lists of the pages name them.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_mangen::Man;
use roff::{Roff, bold, roman};

use super::Result;
use crate::cli::{Cli, ENV_VARS, EXIT_CODES, ManArgs};
use crate::errors::ExpectedError;
use crate::output::{out, outln};

/// The footer's source: what `-V` prints.
const SOURCE: &str = concat!("tarun ", env!("TARUN_VERSION"));
/// The footer's manual name.
const MANUAL: &str = "tarun manual";

pub fn man(args: &ManArgs) -> Result<ExitCode> {
    let mut cli = without_help(Cli::command());
    // Propagates the global options (`--store`, `--color`) and names the subcommands
    // `tarun run`, as their pages show them.
    cli.build();
    if let Some(dir) = &args.dir {
        // Every page is written before any is listed: a reader that stops early (`| head -1`)
        // cuts only the listing.
        let mut written = Vec::new();
        for (file, page) in all_pages(&cli)? {
            let path = dir.join(&file);
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&path, page))
                .map_err(|e| anyhow::anyhow!("writing `{path}`: {e}"))?;
            written.push(path);
        }
        for path in &written {
            outln!("{path}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let page = match &args.command {
        None => main_page(&cli)?,
        Some(name) => {
            let pages = pages(&cli);
            let (_, sub) = pages.iter().find(|(page, _)| page == name).ok_or_else(|| {
                let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
                ExpectedError::Usage(format!(
                    "no subcommand `{name}` (one of: {})",
                    names.join(", ")
                ))
            })?;
            subcommand_page(name, sub)?
        }
    };
    out!("{page}")?;
    Ok(ExitCode::SUCCESS)
}

/// `cmd` without clap's `help` subcommands (`tarun help run`), which would otherwise be listed
/// and get pages of their own.
fn without_help(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(without_help)
}

/// Every page with its file name: `tarun.1`, then `tarun-run.1` and the rest.
fn all_pages(cli: &clap::Command) -> Result<Vec<(String, String)>> {
    let mut out = vec![("tarun.1".to_owned(), main_page(cli)?)];
    for (name, sub) in pages(cli) {
        out.push((format!("tarun-{name}.1"), subcommand_page(&name, sub)?));
    }
    Ok(out)
}

/// Every visible subcommand at any depth, named as its page is without `tarun-`: `run`,
/// `data`, `data-info`.
fn pages(cli: &clap::Command) -> Vec<(String, &clap::Command)> {
    fn walk<'a>(cmd: &'a clap::Command, prefix: &str, out: &mut Vec<(String, &'a clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{prefix}{}", sub.get_name());
            out.push((name.clone(), sub));
            walk(sub, &format!("{name}-"), out);
        }
    }
    let mut out = Vec::new();
    walk(cli, "", &mut out);
    out
}

/// tarun(1): name, synopsis, description, options, the subcommands (each a tarun-NAME(1)), then
/// EXIT STATUS and ENVIRONMENT from the tables `--help` prints.
fn main_page(cli: &clap::Command) -> Result<String> {
    let man = Man::new(cli.clone())
        .title("TARUN")
        .source(SOURCE)
        .manual(MANUAL);
    let mut page = Vec::new();
    let render = |page: &mut Vec<u8>| -> std::io::Result<()> {
        man.render_title(page)?;
        man.render_name_section(page)?;
        man.render_synopsis_section(page)?;
        man.render_description_section(page)?;
        man.render_options_section(page)?;
        man.render_subcommands_section(page)?;
        page.extend(reference_sections().as_bytes());
        man.render_version_section(page)
    };
    render(&mut page).map_err(anyhow::Error::from)?;
    Ok(tidy(&page))
}

/// tarun-NAME(1): the subcommand's synopsis, description and options (its own subcommands for
/// `data`), and a pointer back to tarun(1) for the exit codes and environment.
fn subcommand_page(name: &str, sub: &clap::Command) -> Result<String> {
    let title = format!("TARUN-{}", name.to_uppercase());
    let man = Man::new(sub.clone())
        .title(title)
        .source(SOURCE)
        .manual(MANUAL);
    let mut page = Vec::new();
    let render = |page: &mut Vec<u8>| -> std::io::Result<()> {
        man.render_title(page)?;
        man.render_name_section(page)?;
        man.render_synopsis_section(page)?;
        man.render_description_section(page)?;
        man.render_options_section(page)?;
        if sub.get_subcommands().any(|s| !s.is_hide_set()) {
            man.render_subcommands_section(page)?;
        }
        let mut see_also = Roff::new();
        see_also.control("SH", ["SEE ALSO"]).text([
            bold("tarun"),
            roman("(1), for the exit codes and the environment."),
        ]);
        see_also.to_writer(page)
    };
    render(&mut page).map_err(anyhow::Error::from)?;
    Ok(tidy(&page))
}

/// The page's sections rendered one by one each begin with roff's definition of `\*(Aq` (the
/// apostrophe): keeps one, right after `.TH`, so that a page starts with its title line.
fn tidy(page: &[u8]) -> String {
    let text = String::from_utf8_lossy(page);
    let mut out = String::with_capacity(text.len());
    for line in text.lines().filter(|l| !APOSTROPHE.contains(l)) {
        out.push_str(line);
        out.push('\n');
        if line.starts_with(".TH ") {
            for def in APOSTROPHE {
                out.push_str(def);
                out.push('\n');
            }
        }
    }
    out
}

/// roff's definition of the `\*(Aq` string, as the `roff` crate writes it.
const APOSTROPHE: [&str; 2] = [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];

/// EXIT STATUS and ENVIRONMENT, one tagged paragraph per code and variable.
fn reference_sections() -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in EXIT_CODES {
        roff.control("TP", [])
            .text([bold(*code)])
            .text([roman(*meaning)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in ENV_VARS {
        roff.control("TP", [])
            .text([bold(*name)])
            .text([roman(*meaning)]);
    }
    roff.to_roff()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_subcommand_has_a_page_named_after_it() {
        let mut cli = without_help(Cli::command());
        cli.build();
        let pages = all_pages(&cli).unwrap();
        assert_eq!(pages[0].0, "tarun.1");
        for (file, page) in &pages[1..] {
            let name = file
                .strip_prefix("tarun-")
                .unwrap()
                .strip_suffix(".1")
                .unwrap();
            let th = format!(".TH TARUN-{} 1", name.to_uppercase());
            assert!(
                page.starts_with(&th),
                "{file}: {}",
                &page[..80.min(page.len())]
            );
        }
        assert!(!pages.iter().any(|(f, _)| f.contains("exec-node")));
    }
}
