//! `berth image`: import, build, list, inspect and remove images of the local store
//! (`<root>/images`, see `berth_runtime::image`).

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use berth_runtime::container::images_in_use;
use berth_runtime::image::{BuildOptions, ImageStore, ImageSummary};

use crate::cli::{GlobalArgs, ImageCommand};

pub fn run(global: &GlobalArgs, cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    let store = ImageStore::open(&global.root)
        .with_context(|| format!("opening the image store under {}", global.root.display()))?;
    match cmd {
        ImageCommand::Import { path, tag } => {
            let images = store
                .import(&path, tag.as_deref())
                .context("image import")?;
            for image in images {
                let name = image.name.as_deref().unwrap_or("<none>");
                out(format_args!(
                    "Loaded image {name} ({})",
                    image.manifest_digest
                ))?;
            }
        }
        ImageCommand::Build {
            dir,
            tag,
            entrypoint,
            cmd,
            env,
            workdir,
            user,
        } => {
            let options = BuildOptions {
                rootfs_dir: dir.clone(),
                tag: tag.clone(),
                entrypoint,
                cmd,
                env,
                working_dir: workdir,
                user,
                created: Some(jiff_now()?),
                ..BuildOptions::default()
            };
            let image = store.build(options).context("image build")?;
            let name = image.name.as_deref().unwrap_or(&tag);
            out(format_args!(
                "Built image {name} ({})",
                image.manifest_digest
            ))?;
        }
        ImageCommand::Ls => {
            let images = store.list().context("listing images")?;
            print_table(&images, now_seconds())?;
        }
        ImageCommand::Inspect { image } => {
            let details = store.inspect(&image).context("image inspect")?;
            out(format_args!("{}", serde_json::to_string_pretty(&details)?))?;
        }
        ImageCommand::Rm { images } => {
            let in_use = images_in_use(&global.root);
            let mut failed = false;
            for image in images {
                match store.remove(&image, &|digest| in_use.contains(digest.as_str())) {
                    Ok(removal) => {
                        for tag in &removal.untagged {
                            out(format_args!("Untagged: {tag}"))?;
                        }
                        if let Some(digest) = &removal.deleted {
                            out(format_args!("Deleted: {digest}"))?;
                        }
                        tracing::debug!(
                            image = %image,
                            blobs = removal.garbage.blobs,
                            layers = removal.garbage.layers,
                            "image removed"
                        );
                    }
                    Err(err) => {
                        // Keep going with the other images, like docker; report each failure.
                        let err = anyhow::Error::new(err).context("image rm");
                        eprintln!("berth: {err:#}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line on stdout; a closed pipe (`| head`) is not an error.
fn out(line: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The build time recorded in the image config.
fn jiff_now() -> anyhow::Result<berth_runtime::image::Timestamp> {
    berth_runtime::image::Timestamp::from_second(now_seconds()).context("the clock is out of range")
}

fn print_table(images: &[ImageSummary], now: i64) -> anyhow::Result<()> {
    let rows: Vec<[String; 4]> = images
        .iter()
        .map(|i| {
            [
                i.name.clone().unwrap_or_else(|| "<none>".to_owned()),
                i.manifest_digest.short().to_owned(),
                human_size(i.size),
                i.created
                    .map_or_else(|| "N/A".to_owned(), |t| ago(now - t.as_second())),
            ]
        })
        .collect();
    let header = ["NAME", "DIGEST", "SIZE", "CREATED"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let line = format!(
            "{:<w0$}   {:<w1$}   {:<w2$}   {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out(format_args!("{}", line.trim_end()))?;
    }
    Ok(())
}

/// Sizes in decimal units with three significant digits, as docker prints them (`4.26MB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes}B");
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$}{}", UNITS[unit])
}

/// `5 minutes ago`, as docker prints ages.
fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    let (n, unit) = match s {
        0..60 => return "Less than a minute ago".to_owned(),
        60..3600 => (s / 60, "minute"),
        3600..86_400 => (s / 3600, "hour"),
        86_400..1_209_600 => (s / 86_400, "day"),
        1_209_600..5_184_000 => (s / 604_800, "week"),
        5_184_000..63_072_000 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    if n == 1 {
        let article = if unit == "hour" { "An" } else { "A" };
        format!("{article} {unit} ago")
    } else {
        format!("{n} {unit}s ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_000), "1.00kB");
        assert_eq!(human_size(4_262_912), "4.26MB");
        assert_eq!(human_size(42_600_000), "42.6MB");
        assert_eq!(human_size(426_000_000), "426MB");
        assert_eq!(human_size(2_000_000_000_000_000), "2000TB");
    }

    #[test]
    fn ages_read_like_docker() {
        assert_eq!(ago(5), "Less than a minute ago");
        assert_eq!(ago(-5), "Less than a minute ago");
        assert_eq!(ago(60), "A minute ago");
        assert_eq!(ago(3 * 60 + 5), "3 minutes ago");
        assert_eq!(ago(3600), "An hour ago");
        assert_eq!(ago(5 * 86_400), "5 days ago");
        assert_eq!(ago(3 * 604_800), "3 weeks ago");
        assert_eq!(ago(90 * 86_400), "3 months ago");
        assert_eq!(ago(2 * 31_536_000 + 10), "2 years ago");
    }
}
