//! One file per subcommand. `dispatch` is the only place that knows them all.
//!
//! The local commands (`run`, `container`, `image`, `schema`) use the runtime directly; the
//! client commands (`apply`, `get`, `describe`, ...) talk to the daemon's API through
//! [`crate::client`], with kubectl's arguments and output ([`resource`], [`table`]).

mod apply;
mod container;
mod delete;
mod describe;
mod events;
mod exec_pod;
mod get;
mod image;
mod logs;
mod objects;
mod pods;
mod resource;
mod rollout;
mod run;
mod scale;
mod schema;
mod set;
mod table;
mod top;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Run(args) => run::run(&global, args),
        Command::Exec(args) => exec_pod::run(&global, args),
        Command::Container(cmd) => container::run(&global, cmd),
        Command::Image(cmd) => image::run(&global, cmd),
        Command::Schema(args) => schema::run(args),
        Command::Apply(args) => apply::run(&global, args),
        Command::Get(args) => get::run(&global, args),
        Command::Describe(args) => describe::run(&global, args),
        Command::Delete(args) => delete::run(&global, args),
        Command::Scale(args) => scale::run(&global, args),
        Command::Rollout(cmd) => rollout::run(&global, cmd),
        Command::Set(cmd) => set::run(&global, cmd),
        Command::Logs(args) => logs::run(&global, args),
        Command::Events(args) => events::run(&global, args),
        Command::Top(cmd) => top::run(&global, cmd),
        Command::Daemon(args) => {
            crate::daemon::run(crate::daemon::DaemonConfig::new(&global, args)?)
                .map(|()| ExitCode::SUCCESS)
        }
    }
}
