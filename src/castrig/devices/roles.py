"""Small role interfaces: what the control layer and the runner need of each kind of device.

A driver implements one role for one device model over a :class:`~castrig.links.Link`. The
runner only sees roles, so a chamber built from two Alicat MFCs and one with its own controller
are driven by the same recipe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from castrig.errors import CastrigError

if TYPE_CHECKING:  # numpy only names a field's type here: `castrig check`, `runs` and `lots` need not load it
    import numpy as np


class DeviceError(CastrigError):
    """A device answered, but with an error or alarm. The message names device and command."""

    def __init__(self, device: str, command: str, message: str):
        self.device = device
        self.command = command
        super().__init__(f"{device}: {command!r}: {message}")


class DeviceCommsError(DeviceError):
    """The device did not answer, or not intelligibly (link failed, garbled reply): unlike an
    error or alarm the device reported, this may pass once the cable or the line is back."""


class Device(ABC):
    """Every driver has a name (from the profile) used in errors, events and sample channels."""

    name: str

    def close(self) -> None:
        """Release the link."""


# -- syringe pumps ---------------------------------------------------------------------------
class PumpState(Enum):
    """The prompt character of every NE-1000 reply, named."""

    INFUSING = "I"
    WITHDRAWING = "W"
    STOPPED = "S"
    PAUSED = "P"
    TIMED_PAUSE = "T"
    USER_WAIT = "U"
    PURGING = "X"

    @property
    def moving(self) -> bool:
        return self in (PumpState.INFUSING, PumpState.WITHDRAWING, PumpState.PURGING)


@dataclass(frozen=True)
class Dispensed:
    infused_ml: float
    withdrawn_ml: float


class SyringePump(Device):
    def arm_watchdog(self) -> None:
        """Start the pump's own communications watchdog, where it has one and is set up to use
        it (the runner does, just before its first tick; nothing is armed before that)."""

    def disarm_watchdog(self) -> None:
        """Stop the watchdog of a pump known to be stopped, as castrig lets go of it (the rig
        does as it closes); a no-op where there is none. Never raises."""

    def alarms_sent(self) -> list[str]:
        """The alarms the pump sent on its own (its watchdog's during a stalled line), in words,
        oldest first, as its driver read them; none where a pump sends none."""
        return []

    def best_effort_stop(self) -> Any:
        """After :meth:`stop` failed (no reply, garbage): the stop sent once more without
        waiting for the line to be confirmed in step first, then the state read back, as a
        :class:`castrig.devices.blind_stop.BlindStop` (what was sent, whether it read back
        stopped); ``None`` where a pump has no such stop. Never raises."""
        return None

    @abstractmethod
    def set_diameter_mm(self, diameter_mm: float) -> None: ...

    @abstractmethod
    def set_rate_ml_min(self, rate_ml_min: float) -> None: ...

    @abstractmethod
    def set_volume_ml(self, volume_ml: float) -> None:
        """Volume target: the pump stops by itself once it has dispensed this much."""

    @abstractmethod
    def set_direction(self, infuse: bool) -> None: ...

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def state(self) -> PumpState: ...

    @abstractmethod
    def dispensed(self) -> Dispensed: ...

    @abstractmethod
    def clear_dispensed(self) -> None: ...

    def use_one_phase(self) -> None:
        """Make the pump run one phase and stop at its volume target (a pump that keeps a
        program of several phases overrides this); called stopped, before the phase is set."""

    def prepare_dispense(self, volume_ml: float, rate_ml_min: float) -> None:
        """All of a dispense but its start: stopped, one phase, infusing ``volume_ml`` at
        ``rate_ml_min``, its counter cleared. Idempotent: sent again after a reply that was lost,
        it sets the same and nothing moves."""
        for action in self.dispense_setup(volume_ml, rate_ml_min):
            action()

    def dispense_setup(self, volume_ml: float, rate_ml_min: float) -> list[Callable[[], None]]:
        """:meth:`prepare_dispense`'s settings, in order, one call each: a caller that must keep
        other devices alive talks to them in between (on a slow line a set-up of a dozen
        exchanges outlasted another pump's safe-mode watchdog)."""
        return [self.stop, self.use_one_phase, lambda: self.set_direction(True),
                lambda: self.set_rate_ml_min(rate_ml_min), lambda: self.set_volume_ml(volume_ml), self.clear_dispensed]

    def dispense(self, volume_ml: float, rate_ml_min: float) -> None:
        """Infuse ``volume_ml`` at ``rate_ml_min`` and return once pumping has started."""
        self.prepare_dispense(volume_ml, rate_ml_min)
        self.start()


# -- mass-flow controllers -------------------------------------------------------------------
@dataclass(frozen=True)
class FlowReading:
    pressure_psia: float
    temperature_c: float
    volumetric_flow_lpm: float
    mass_flow_slpm: float
    setpoint_slpm: float
    gas: str
    status: tuple[str, ...] = ()


class FlowController(Device):
    full_scale_slpm: float

    @abstractmethod
    def read(self) -> FlowReading: ...

    @abstractmethod
    def set_flow_slpm(self, flow_slpm: float) -> None: ...

    def release_hold(self) -> None:
        """End a valve hold (the reading's status shows ``HLD``) so the setpoint governs the
        valve again; a controller without holds has nothing to end."""


# -- humidity --------------------------------------------------------------------------------
@dataclass(frozen=True)
class HumidityReading:
    rh_pct: float
    temperature_c: float


class HumiditySensor(Device):
    @abstractmethod
    def read(self) -> HumidityReading: ...


@dataclass(frozen=True)
class ChamberReading:
    rh_pct: float
    temperature_c: float
    setpoint_rh_pct: float


class HumidityChamber(Device):
    """A chamber with its own RH controller: we send setpoints and supervise."""

    @abstractmethod
    def set_rh_setpoint(self, rh_pct: float) -> None: ...

    @abstractmethod
    def read(self) -> ChamberReading: ...

    @abstractmethod
    def set_humidifier(self, on: bool) -> None:
        """Off means wet air off and dry purge on: the chamber's part of the safe state."""

    @abstractmethod
    def humidifier_on(self) -> bool: ...


# -- cameras ---------------------------------------------------------------------------------
class Illumination(str, Enum):
    REFLECTED = "reflected"
    TRANSMITTED = "transmitted"
    SECTION = "section"


@dataclass
class Frame:
    """One micrograph; ``metadata`` carries what a backend knows (ground truth on the twin)."""

    image: np.ndarray
    pixel_size_um: float
    exposure_ms: float
    illumination: Illumination
    metadata: dict[str, Any] = field(default_factory=dict)


class Camera(Device):
    @abstractmethod
    def snap(self, illumination: Illumination) -> Frame: ...

    def resume_after(self, taken: list[tuple[str, dict[str, Any]]]) -> None:
        """A resumed run's camera goes on after the frames its run recorded before the crash,
        ``(illumination, metadata)`` each as stored: a backend that replays a sequence (a folder)
        would start it over in the new process and hand the next membrane the first one's
        images. A live camera has nothing to do."""
