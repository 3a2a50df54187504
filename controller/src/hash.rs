//! The `pod-template-hash` of a pod template, as Kubernetes' `controller.ComputeHash`: FNV-32a of
//! the template (here its canonical JSON: maps are ordered) and of the collision count, written
//! in decimal and encoded with the alphabet of generated names so that it never spells words.

use berth_api::core_v1::PodTemplateSpec;

/// The label that ties a ReplicaSet and its pods to one template revision.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

fn fnv32a(hash: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(hash, |h, b| (h ^ u32::from(*b)).wrapping_mul(FNV_PRIME))
}

/// Kubernetes' `rand.SafeEncodeString`: each character mapped into an alphabet without vowels
/// or look-alike characters.
pub fn safe_encode(s: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// The hash of `template` with `collision_count` mixed in (when set), safe-encoded.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut template = template.clone();
    template.metadata.labels.remove(POD_TEMPLATE_HASH_LABEL);
    let json = serde_json::to_vec(&template).unwrap_or_default();
    let mut hash = fnv32a(FNV_OFFSET, &json);
    if let Some(count) = collision_count {
        hash = fnv32a(hash, &count.to_le_bytes());
    }
    safe_encode(&hash.to_string())
}

/// Whether two templates are the same but for their `pod-template-hash` label (Kubernetes'
/// `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        t.metadata.labels.remove(POD_TEMPLATE_HASH_LABEL);
        t
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(FNV_OFFSET, b""), 0x811c_9dc5);
        assert_eq!(fnv32a(FNV_OFFSET, b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(FNV_OFFSET, b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn hash_ignores_its_own_label_and_changes_with_collisions_and_template() {
        let template = berth_api::testing::deployment("web").build().spec.template;
        let hash = compute_hash(&template, None);
        assert!(!hash.is_empty());
        assert!(
            hash.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        let mut labelled = template.clone();
        labelled
            .metadata
            .labels
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        assert_eq!(compute_hash(&labelled, None), hash);
        assert!(equal_ignore_hash(&template, &labelled));
        assert_ne!(compute_hash(&template, Some(1)), hash);
        assert_ne!(
            compute_hash(&template, Some(1)),
            compute_hash(&template, Some(2))
        );
        let mut changed = template.clone();
        changed.spec.containers[0].image = Some("busybox:1.37".into());
        assert_ne!(compute_hash(&changed, None), hash);
        assert!(!equal_ignore_hash(&template, &changed));
    }
}
