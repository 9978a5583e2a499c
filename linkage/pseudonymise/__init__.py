"""Pseudonymised zone: keyed person ids, generalised person attributes, activity without local ids."""

from linkage.pseudonymise.keys import create_key_file, load_release_key
from linkage.pseudonymise.stage import pseudonymise_activity, record_person_map
from linkage.pseudonymise.tokens import person_id_for, pseudonym

__all__ = [
    "create_key_file",
    "load_release_key",
    "person_id_for",
    "pseudonym",
    "pseudonymise_activity",
    "record_person_map",
]
