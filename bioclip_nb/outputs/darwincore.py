"""Darwin Core out: hits, or one's own photos with BioCLIP 2's identification, as an
Occurrence-core CSV with standard term names.

* :func:`hits_table`: one row per hit, an existing record (its GBIF occurrence where known,
  place, date and licence from :mod:`occurrences` when they were looked up).
* :func:`photos_table`: one row per photo of a batch, a first-pass identification sheet:
  the prediction is the identification (``identifiedBy`` names the model), its score and the
  neighbours' consensus go to ``identificationRemarks``. Place and date are left for the
  observer to fill in.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..layout import GBIF_OCCURRENCE, RANKS, display_name
from ..names import clean, scientific_name

#: The columns written, all Darwin Core Occurrence-core terms (tests check the list).
HIT_TERMS = ("occurrenceID", "basisOfRecord", "scientificName", "kingdom", "phylum", "class", "order", "family",
             "genus", "specificEpithet", "taxonRank", "vernacularName", "decimalLatitude", "decimalLongitude",
             "geodeticDatum", "eventDate", "month", "countryCode", "recordedBy", "license", "rightsHolder",
             "bibliographicCitation", "associatedMedia", "references", "datasetID", "institutionCode",
             "catalogNumber", "occurrenceRemarks")
PHOTO_TERMS = ("occurrenceID", "basisOfRecord", "associatedMedia", "scientificName", "kingdom", "phylum", "class",
               "order", "family", "genus", "specificEpithet", "taxonRank", "vernacularName", "identifiedBy",
               "dateIdentified", "identificationRemarks", "identificationVerificationStatus", "occurrenceRemarks")

#: GBIF's basis-of-record values as Darwin Core writes them.
BASIS = {"HUMAN_OBSERVATION": "HumanObservation", "MACHINE_OBSERVATION": "MachineObservation",
         "PRESERVED_SPECIMEN": "PreservedSpecimen", "LIVING_SPECIMEN": "LivingSpecimen",
         "FOSSIL_SPECIMEN": "FossilSpecimen", "MATERIAL_SAMPLE": "MaterialSample", "OBSERVATION": "Occurrence",
         "OCCURRENCE": "Occurrence", "MATERIAL_CITATION": "MaterialCitation"}


def _basis(value: object) -> str | None:
    text = clean(value)
    if text is None:
        return None
    return BASIS.get(text.upper().replace(" ", "_"), text)


def _taxon(lineage: Mapping) -> dict[str, object]:
    """The classification terms from ranks named as our columns are."""
    genus, epithet = clean(lineage.get("genus")), clean(lineage.get("species"))
    deepest = next((r for r in reversed(RANKS) if clean(lineage.get(r))), None)
    return {"scientificName": scientific_name(genus, epithet) or (clean(lineage.get(deepest)) if deepest else None),
            **{r: clean(lineage.get(r)) for r in RANKS[:6]}, "specificEpithet": epithet,
            "taxonRank": deepest}


def hit_row(hit: Mapping) -> dict[str, object]:
    """One hit as Darwin Core terms."""
    key = clean(hit.get("source_id"))
    gbif = (clean(hit.get("source_dataset")) or "").lower() == "gbif" and key is not None and key.isdigit()
    lat, lon = hit.get("latitude"), hit.get("longitude")
    located = lat is not None and lon is not None and pd.notna(lat) and pd.notna(lon)
    url = clean(hit.get("url"))
    month = hit.get("month")
    return {
        "occurrenceID": f"{GBIF_OCCURRENCE}{key}" if gbif else f"{clean(hit.get('source_dataset')) or 'unknown'}:{key}",
        "basisOfRecord": _basis(hit.get("basisOfRecord")),
        **_taxon(hit), "vernacularName": clean(hit.get("common_name")),
        "decimalLatitude": lat if located else None, "decimalLongitude": lon if located else None,
        "geodeticDatum": "EPSG:4326" if located else None, "eventDate": clean(hit.get("event_date")),
        "month": int(month) if month is not None and pd.notna(month) else None,
        "countryCode": clean(hit.get("country_code")), "recordedBy": clean(hit.get("recorded_by")),
        "license": clean(hit.get("license")), "rightsHolder": clean(hit.get("rights_holder")) or clean(hit.get("publisher")),
        "bibliographicCitation": clean(hit.get("citation")),
        "associatedMedia": url if url and url.lower().startswith(("http://", "https://")) else None,
        "references": clean(hit.get("occurrence_url")), "datasetID": clean(hit.get("dataset_key")),
        "institutionCode": clean(hit.get("source_dataset")), "catalogNumber": key,
        "occurrenceRemarks": f"similar image (rank {int(hit['rank'])}, cosine similarity {float(hit['similarity']):.4f})",
    }


def hits_table(hits: pd.DataFrame) -> pd.DataFrame:
    """Hits (with occurrence columns if looked up) as a Darwin Core table."""
    return pd.DataFrame([hit_row(h) for h in hits.to_dict("records")], columns=list(HIT_TERMS))


def photo_row(photo, model: str, searched_at: str) -> dict[str, object]:
    """One photo of a batch (``batch.Photo``) as an identification sheet row."""
    from ..taxonomy import neighbour_consensus
    row: dict[str, object] = dict.fromkeys(PHOTO_TERMS)
    row.update(occurrenceID=f"sha256:{photo.sha256}" if photo.sha256 else photo.name, associatedMedia=photo.name,
               basisOfRecord="HumanObservation", identificationVerificationStatus="unverified")
    if photo.error:
        row["occurrenceRemarks"] = f"not identified: {photo.error}"
        return row
    pred = photo.predict("species", 1)
    remarks = []
    if pred and pred[0].name:
        lineage = dict(zip(RANKS, pred[0].lineage))
        genus, epithet = (pred[0].name.split(" ", 1) + [None])[:2]
        lineage.update(genus=genus, species=epithet)
        row.update(_taxon(lineage), vernacularName=pred[0].common_name,
                   identifiedBy=f"{display_name(model)} ({model}) via bioclip-nb", dateIdentified=searched_at)
        remarks.append(f"{display_name(model)} score {pred[0].score:.3f}"
                       + (f", restricted to {photo.within}" if photo.predictions is not None else ""))
    hits = photo.hits
    if hits is not None and len(hits):
        votes = {c.rank.value: c for c in neighbour_consensus(hits)}
        species = votes.get("species")
        if species is not None and species.name:
            remarks.append(f"neighbours' consensus {species.name} ({species.count} of {species.total})")
        best = hits.iloc[0]
        remarks.append(f"top hit {scientific_name(best.get('genus'), best.get('species')) or 'unidentified'} "
                       f"(similarity {float(best['similarity']):.3f})")
    row["identificationRemarks"] = "; ".join(remarks) or None
    return row


def photos_table(photos: list, model: str, searched_at: str) -> pd.DataFrame:
    """A batch of one's own photos as a Darwin Core identification sheet."""
    return pd.DataFrame([photo_row(p, model, searched_at) for p in photos], columns=list(PHOTO_TERMS))
