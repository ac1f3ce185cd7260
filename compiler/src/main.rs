use std::sync::Mutex;

use clap::Parser;

/// Where the last uncaught panic happened, for the one-line report.
static PANIC_LOCATION: Mutex<Option<String>> = Mutex::new(None);

fn main() {
    let cli = fomo_ad::cli::Cli::try_parse().unwrap_or_else(|e| {
        use clap::error::ErrorKind;
        if matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            e.exit();
        }
        // clap's report spans several lines; fold it into one without the usage reminder.
        let rendered = e.render().to_string();
        let kept: Vec<&str> = rendered
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
            })
            .collect();
        let text = kept.join(" ");
        eprintln!(
            "error: {} (see --help)",
            text.strip_prefix("error: ").unwrap_or(&text)
        );
        std::process::exit(2);
    });
    // Every failure is one line and exit code 2, even a bug: the hook records where a panic
    // happened instead of printing a multi-line report, and main reports it below. Panics that
    // fomo-ad turns into errors itself (inside tract) are not recorded.
    std::panic::set_hook(Box::new(|info| {
        if fomo_ad::error::panic_is_caught() {
            return;
        }
        if let Ok(mut slot) = PANIC_LOCATION.lock() {
            *slot = Some(info.location().map_or_else(String::new, |l| l.to_string()));
        }
    }));
    let outcome = std::panic::catch_unwind(|| fomo_ad::cli::run(cli));
    let message = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(payload) => {
            let location = PANIC_LOCATION
                .lock()
                .ok()
                .and_then(|mut slot| slot.take())
                .unwrap_or_default();
            format!(
                "internal error (a bug in fomo-ad, please report it): {} at {location}",
                fomo_ad::error::panic_message(&*payload)
            )
        }
    };
    eprintln!("error: {message}");
    std::process::exit(2);
}
