//! The Kubernetes source: one kube-runtime watcher per watch on core/v1 Events.

use futures::{Stream, StreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatcherEvent};
use kube::{Api, Client};

use super::{Delivery, Signal, SlimEvent};
use crate::ledger::WatchId;

/// What one watch selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    /// Where the Event objects live; `None` watches all namespaces.
    pub namespace: Option<String>,
    /// A field selector passed to the API server as is.
    pub field_selector: Option<String>,
    /// Seconds the API server keeps a watch open; a stream silent for 5 s longer than this is
    /// taken as stalled and reopened.
    pub timeout_seconds: u32,
}

/// kube's and client-go's default: just under the API server's 5-minute cap.
pub const DEFAULT_WATCH_TIMEOUT_SECONDS: u32 = 290;

impl WatchSpec {
    pub fn describe(&self) -> String {
        format!(
            "namespace={} fieldSelector={}",
            self.namespace.as_deref().unwrap_or("<all>"),
            self.field_selector.as_deref().unwrap_or("<none>")
        )
    }
}

/// Every watch's signals, merged; watch ids are the positions in `specs`.
pub fn watch_events(
    client: Client,
    specs: &[WatchSpec],
) -> impl Stream<Item = Signal> + Send + use<> {
    let streams = specs.iter().enumerate().map(|(index, spec)| {
        // `Config` validation caps the watches at `MAX_WATCHES`, far below u16::MAX.
        let watch = WatchId::try_from(index).unwrap_or(WatchId::MAX);
        let api: Api<SlimEvent> = match &spec.namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        };
        // A consistent (quorum) list: `Any` may serve a stale cache after a 410, and an older
        // count would be re-baselined and then counted a second time.
        let mut config =
            watcher::Config::default().list_semantic(watcher::ListSemantic::MostRecent);
        if let Some(selector) = &spec.field_selector {
            config = config.fields(selector);
        }
        config = config.timeout(spec.timeout_seconds);
        watcher::watcher(api, config)
            .default_backoff()
            .map(move |item| to_signal(watch, item))
            .boxed()
    });
    futures::stream::select_all(streams)
}

fn to_signal(watch: WatchId, item: Result<WatcherEvent<SlimEvent>, watcher::Error>) -> Signal {
    let object = |delivery, event: SlimEvent| Signal::Object {
        watch,
        delivery,
        event: event.into_observation(),
    };
    match item {
        Ok(WatcherEvent::Init) => Signal::ListStarted(watch),
        Ok(WatcherEvent::InitApply(event)) => object(Delivery::Listed, event),
        Ok(WatcherEvent::InitDone) => Signal::ListDone(watch),
        Ok(WatcherEvent::Apply(event)) => object(Delivery::Applied, event),
        Ok(WatcherEvent::Delete(event)) => object(Delivery::Deleted, event),
        Err(error) => Signal::WatchError {
            watch,
            message: describe_error(&error),
        },
    }
}

/// A cause a person can act on: a 403 names the verb and resource the RBAC role lacks.
pub fn describe_error(error: &watcher::Error) -> String {
    let (verb, client_error) = match error {
        watcher::Error::InitialListFailed(e) => ("list", Some(e)),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => ("watch", Some(e)),
        watcher::Error::WatchError(status) if status.code == 403 => {
            return format!(
                "forbidden: the service account may not watch events (RBAC verb \"watch\" on resource \"events\" is missing): {}",
                status.message
            );
        }
        watcher::Error::WatchError(status) if status.code == 410 => {
            return format!("watch expired (410 Gone), relisting: {}", status.message);
        }
        _ => ("watch", None),
    };
    if let Some(kube::Error::Api(status)) = client_error
        && status.code == 403
    {
        return format!(
            "forbidden: the service account may not {verb} events (RBAC verb \"{verb}\" on resource \"events\" is missing): {}",
            status.message
        );
    }
    error.to_string()
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn forbidden() -> Status {
        Status::failure("events is forbidden", "Forbidden").with_code(403)
    }

    #[test]
    fn forbidden_list_names_the_missing_verb_and_resource() {
        let error = watcher::Error::InitialListFailed(kube::Error::Api(forbidden().boxed()));
        let text = describe_error(&error);
        assert!(
            text.contains("RBAC verb \"list\" on resource \"events\""),
            "{text}"
        );
    }

    #[test]
    fn forbidden_watch_names_the_missing_verb() {
        let error = watcher::Error::WatchStartFailed(kube::Error::Api(forbidden().boxed()));
        assert!(describe_error(&error).contains("RBAC verb \"watch\""));
        let in_stream = watcher::Error::WatchError(forbidden().boxed());
        assert!(describe_error(&in_stream).contains("RBAC verb \"watch\""));
    }

    #[test]
    fn other_errors_keep_their_cause() {
        let gone = watcher::Error::WatchError(
            Status::failure("too old resource version", "Expired")
                .with_code(410)
                .boxed(),
        );
        assert!(describe_error(&gone).contains("410 Gone"));
        let server = watcher::Error::InitialListFailed(kube::Error::Api(
            Status::failure("etcd timeout", "InternalError")
                .with_code(500)
                .boxed(),
        ));
        assert!(describe_error(&server).contains("etcd timeout"));
    }
}
