//! Sloth v0.16 SLO plugin declarations: `slo_plugins` (`prometheus/v1`) or `sloPlugins`
//! (`PrometheusServiceLevel`) on the service, `plugins` on each SLO, each
//! `{overridePrevious, chain: [{id, priority, config}]}`.
//!
//! slogate implements the declarative plugins Sloth ships ([`SlothPlugin`]): core `noop`
//! and `debug` (no effect on the rules), contrib `info_labels` and `rule_intervals`. Every other plugin id is
//! an error naming it, and so is `overridePrevious` (it would replace the default rules
//! that slogate always generates): the rules are never silently different from Sloth's.

use super::yaml::{index, quote, DocCtx, Map};
use crate::slo::duration::PromDuration;
use crate::slo::rules::{
    PluginUse, SlothPlugin, PLUGIN_DEBUG, PLUGIN_INFO_LABELS, PLUGIN_NOOP, PLUGIN_RULE_INTERVALS,
};

const SUPPORTED: &str = "sloth.dev/core/noop/v1, sloth.dev/core/debug/v1, sloth.dev/contrib/info_labels/v1 and sloth.dev/contrib/rule_intervals/v1";

/// Read one plugins block (`key` of `m`); absent gives an empty chain. Problems are errors
/// in `ctx`.
pub(crate) fn parse_block(ctx: &mut DocCtx, m: &Map, key: &str) -> Vec<PluginUse> {
    let Some(block) = m.map(ctx, key) else {
        return Vec::new();
    };
    block.check_keys(ctx, &["overridePrevious", "chain"], &[]);
    if block.opt_bool(ctx, "overridePrevious", false) {
        ctx.error(
            &block.field("overridePrevious"),
            "not supported: overridePrevious replaces Sloth's default rule plugins, and slogate always generates Sloth's default rules; remove it",
        );
    }
    let Some((items, path)) = block.seq(ctx, "chain") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index(&path, i);
        let Some(p) = Map::node(ctx, item, &item_path) else {
            continue;
        };
        p.check_keys(ctx, &["id", "priority", "config"], &[]);
        let priority = match p.get("priority") {
            None => 0,
            Some(v) => match v.as_i64() {
                Some(n) => n,
                None => {
                    ctx.error(
                        &p.field("priority"),
                        "expected an integer priority (Sloth's default plugins run at 0)",
                    );
                    continue;
                }
            },
        };
        let Some(id) = p.req_str(
            ctx,
            "id",
            "the plugin id, e.g. sloth.dev/contrib/info_labels/v1",
        ) else {
            continue;
        };
        let plugin = match id.as_str() {
            PLUGIN_NOOP | PLUGIN_DEBUG => Some(SlothPlugin::NoEffect { id: id.clone() }),
            PLUGIN_INFO_LABELS => info_labels(ctx, &p),
            PLUGIN_RULE_INTERVALS => rule_intervals(ctx, &p),
            other => {
                ctx.error(
                    &p.field("id"),
                    format!(
                        "SLO plugin {} is not supported: slogate implements {SUPPORTED}; Sloth's other plugins run Go code that slogate cannot run",
                        quote(other)
                    ),
                );
                None
            }
        };
        if let Some(plugin) = plugin {
            out.push(PluginUse { plugin, priority });
        }
    }
    out
}

/// `sloth.dev/contrib/info_labels/v1` config: `labels` (required, at least one) and
/// `metricName` (default `sloth_slo_info`).
fn info_labels(ctx: &mut DocCtx, p: &Map) -> Option<SlothPlugin> {
    let field = p.field("config");
    let Some(config) = p.map(ctx, "config") else {
        ctx.error(
            &field,
            "missing: the info_labels plugin needs config.labels with at least one label",
        );
        return None;
    };
    config.check_keys(ctx, &["labels", "metricName"], &[]);
    let before = ctx.error_count();
    let labels = config.string_map(ctx, "labels");
    let metric_name = config
        .opt_str(ctx, "metricName")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| crate::slo::rules::METRIC_INFO.to_string());
    if labels.is_empty() {
        ctx.error(
            &config.field("labels"),
            "missing: the info_labels plugin needs at least one label",
        );
    }
    (ctx.error_count() == before).then_some(SlothPlugin::InfoLabels {
        labels,
        metric_name,
    })
}

/// `sloth.dev/contrib/rule_intervals/v1` config: `interval.default` (required) and the
/// optional `interval.sliError`, `interval.metadata` and `interval.alert`, as Prometheus
/// durations.
fn rule_intervals(ctx: &mut DocCtx, p: &Map) -> Option<SlothPlugin> {
    let missing = "missing: the rule_intervals plugin needs config.interval.default, e.g. 5m";
    let Some(config) = p.map(ctx, "config") else {
        ctx.error(&p.field("config"), missing);
        return None;
    };
    config.check_keys(ctx, &["interval"], &[]);
    let Some(interval) = config.map(ctx, "interval") else {
        ctx.error(&config.field("interval"), missing);
        return None;
    };
    interval.check_keys(ctx, &["default", "sliError", "metadata", "alert"], &[]);
    let before = ctx.error_count();
    let mut read = |key: &str| -> Option<PromDuration> {
        let text = interval.opt_str(ctx, key)?;
        match text.parse::<PromDuration>() {
            Ok(d) if d.as_millis() > 0 => Some(d),
            _ => {
                ctx.error(
                    &interval.field(key),
                    format!(
                        "invalid interval {}: expected a positive Prometheus duration, e.g. 5m",
                        quote(&text)
                    ),
                );
                None
            }
        }
    };
    let default = read("default");
    let (sli_error, metadata, alert) = (read("sliError"), read("metadata"), read("alert"));
    if default.is_none() && ctx.error_count() == before {
        ctx.error(&interval.field("default"), missing);
    }
    let default = default.filter(|_| ctx.error_count() == before)?;
    Some(SlothPlugin::RuleIntervals {
        default,
        sli_error,
        metadata,
        alert,
    })
}
