"""The privacy domain, wired once: personal data, consent, erasure, export, retention, audit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persona.access.keys import ApiKeyService
from persona.clock import Clock
from persona.errors import SubjectErasedError
from persona.identity import user_key
from persona.ingest.service import IngestService
from persona.privacy.audit import AuditLog
from persona.privacy.consent import PERSONALIZATION, ConsentService
from persona.privacy.erasure import ErasureService
from persona.privacy.export import ExportService
from persona.privacy.gate import PrivacyGate
from persona.privacy.personal import PersonalData
from persona.privacy.retention import RetentionService
from persona.privacy.secrets import encryption_key, pseudonym_key
from persona.privacy.settings import PrivacySettings
from persona.profiles.service import ProfileService
from persona.recommend.service import RecommendationService
from persona.storage.protocols import EventLake, Storage


@dataclass
class PrivacyServices:
    personal: PersonalData
    audit: AuditLog
    consent: ConsentService
    erasure: ErasureService
    export: ExportService
    retention: RetentionService
    gate: PrivacyGate

    @classmethod
    def build(
        cls,
        settings: PrivacySettings,
        home: Path,
        storage: Storage,
        clock: Clock,
        profiles: ProfileService,
        ingest: IngestService,
        recommendations: RecommendationService,
        keys: ApiKeyService,
        lake: EventLake | None = None,
    ) -> PrivacyServices:
        """Build the services and hook them into ingest, traits and recommendations; erasure
        and retention reach the event ``lake`` too."""
        personal = PersonalData(
            settings.personal_fields,
            settings.encrypted_fields,
            pseudonym_key(settings, home),
            encryption_key(settings, home),
            settings.free_text_fields,
        )
        audit = AuditLog(storage, clock)
        consent = ConsentService(
            storage,
            clock,
            audit,
            settings.consent_purposes,
            required=settings.consent_required,
            hash_id=personal.id_hash,
            tombstones_of=personal.tombstone_hashes,
        )
        erasure = ErasureService(
            storage,
            clock,
            personal,
            audit,
            recommendations.registry,
            recommendations.refresh,
            lake,
        )
        services = cls(
            personal=personal,
            audit=audit,
            consent=consent,
            erasure=erasure,
            export=ExportService(storage, clock, profiles, personal, audit),
            retention=RetentionService(storage, clock, audit, settings.retention_days, lake),
            gate=PrivacyGate(personal, consent, settings.unconsented_events),
        )
        ingest.set_gate(services.gate)
        erasure.add_cache_hook(recommendations.forget)  # cached answers for the person
        erasure.add_cache_hook(profiles.forget)  # their rendered profile, here and in Redis
        consent.add_change_listener(recommendations.forget)  # answers assumed consent
        keys.set_audit(audit.record)
        profiles.set_traits_filter(services.check_traits)
        recommendations.set_personalization_check(
            lambda person_id: consent.allows_person(person_id, PERSONALIZATION)
        )
        return services

    def check_traits(self, user_id: str, traits: dict[str, Any]) -> dict[str, Any]:
        """Traits as stored: refused for an erased person, personal values transformed."""
        if self.erasure.is_erased(user_key(user_id)):
            raise SubjectErasedError("this person was erased; their traits are refused")
        return self.personal.scrub(traits) or {}
