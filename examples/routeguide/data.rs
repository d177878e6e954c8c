//! The feature database, embedded: a few named places in New Jersey and New York, in the style of
//! gRPC's `route_guide_db.json` (coordinates in E7: degrees × 10^7).

use sockrpc_examples::routeguide::{Feature, Point};

/// `(latitude, longitude, name)` of every known feature.
const FEATURES: &[(i32, i32, &str)] = &[
    (
        407838351,
        -746143763,
        "Patriots Path, Mendham, NJ 07945, USA",
    ),
    (
        408122808,
        -743999179,
        "101 New Jersey 10, Whippany, NJ 07981, USA",
    ),
    (413628156, -749015468, "U.S. 6, Shohola, PA 18458, USA"),
    (
        419999544,
        -740371136,
        "5 Conners Road, Kingston, NY 12401, USA",
    ),
    (
        414008389,
        -743951297,
        "Mid Hudson Psychiatric Center, New Hampton, NY 10958, USA",
    ),
    (
        419611318,
        -746524769,
        "287 Flugertown Road, Livingston Manor, NY 12758, USA",
    ),
    (
        406109563,
        -742186778,
        "4001 Tremley Point Road, Linden, NJ 07036, USA",
    ),
    (
        416802456,
        -742370183,
        "352 South Mountain Road, Wallkill, NY 12589, USA",
    ),
    (
        412950425,
        -741077389,
        "Bailey Turn Road, Harriman, NY 10926, USA",
    ),
    (
        412144655,
        -743949739,
        "193-199 Wawayanda Road, Hewitt, NJ 07421, USA",
    ),
    (
        415736605,
        -742847522,
        "406-496 Ward Avenue, Pine Bush, NY 12566, USA",
    ),
    (
        413843930,
        -740501726,
        "162 Merrill Road, Highland Mills, NY 10930, USA",
    ),
    (
        410873075,
        -744459023,
        "Clinton Road, West Milford, NJ 07480, USA",
    ),
    (
        412346009,
        -744026814,
        "16 Old Brook Lane, Warwick, NY 10990, USA",
    ),
    (
        402948455,
        -747903913,
        "3 Drake Lane, Pennington, NJ 08534, USA",
    ),
    (
        406337092,
        -740122226,
        "6324 8th Avenue, Brooklyn, NY 11220, USA",
    ),
    (
        406421967,
        -747727624,
        "1 Merck Access Road, Whitehouse Station, NJ 08889, USA",
    ),
    (
        416318082,
        -749677716,
        "78-98 Schalck Road, Narrowsburg, NY 12764, USA",
    ),
    (
        415301720,
        -748416257,
        "282 Lakeview Drive Road, Highland Lake, NY 12743, USA",
    ),
    (
        402647019,
        -747071791,
        "330 Evelyn Avenue, Hamilton Township, NJ 08619, USA",
    ),
];

/// Every known feature.
pub(crate) fn features() -> Vec<Feature> {
    FEATURES
        .iter()
        .map(|&(latitude, longitude, name)| Feature {
            name: name.to_owned(),
            location: Some(Point {
                latitude,
                longitude,
            }),
        })
        .collect()
}
