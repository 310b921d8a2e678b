"""The quantiser of each HEVC picture, read from the bitstream: FFmpeg's HEVC decoder exports no
quantiser maps, so the parameter sets and slice segment headers (ITU-T H.265 section 7.3) are
parsed here up to slice_qp_delta. A picture's QP is the mean of its slices' QPs; the per-block
deltas (cu_qp_delta, adaptive quantisation) lie in the CABAC-coded data and are not read.
Main, Main 10 and range-extension streams are read; of a multi-layer stream its base layer; a
screen-content stream (whose slice headers differ) and any picture whose header cannot be read
run blind."""
from __future__ import annotations

from dataclasses import dataclass


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation-prevention bytes removed)."""

    def __init__(self, nal: bytes):
        self.data = nal.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]  # IndexError on a truncated unit
            v = (v << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


SCREEN_CONTENT_PROFILE = 9  # general_profile_idc of the SCC profiles (and of any later ones)


def _profile_tier_level(b: _Bits, max_sub_layers_minus1: int) -> int:
    """Skips profile_tier_level(); returns general_profile_idc."""
    profile = b.u(8) & 0x1F  # profile space (2), tier (1), profile_idc (5)
    b.u(88)  # 32 compatibility flags, 4 + 43 + 1 constraint bits, general_level_idc (8)
    present = [(b.u(1), b.u(1)) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        b.u(2 * (8 - max_sub_layers_minus1))
    for has_profile, has_level in present:
        b.u(88 * has_profile + 8 * has_level)
    return profile


def _skip_scaling_list_data(b: _Bits) -> None:
    for size in range(4):
        for _ in range(0, 6, 3 if size == 3 else 1):
            if not b.u(1):  # scaling_list_pred_mode_flag
                b.ue()
                continue
            if size > 1:
                b.se()
            for _ in range(min(64, 1 << (4 + (size << 1)))):
                b.se()


def _st_ref_pic_set(b: _Bits, idx: int, sets: list, count: int) -> tuple[list, list]:
    """Short-term reference picture set ``idx`` of the SPS's ``count`` (``count``: a slice
    header's own), predicted from ``sets``: (S0, S1), lists of (delta POC, used by the current
    picture) (H.265 7.3.7, 7.4.8)."""
    if idx and b.u(1):  # inter_ref_pic_set_prediction_flag
        delta_idx = b.ue() + 1 if idx == count else 1
        sign, abs_delta = b.u(1), b.ue() + 1
        delta_rps = (1 - 2 * sign) * abs_delta
        ref_s0, ref_s1 = sets[idx - delta_idx]
        used, use_delta = [], []
        for _ in range(len(ref_s0) + len(ref_s1) + 1):
            used.append(b.u(1))
            use_delta.append(1 if used[-1] else b.u(1))
        n0, n = len(ref_s0), len(ref_s0) + len(ref_s1)
        s0, s1 = [], []
        for j in reversed(range(len(ref_s1))):
            d = ref_s1[j][0] + delta_rps
            if d < 0 and use_delta[n0 + j]:
                s0.append((d, used[n0 + j]))
        if delta_rps < 0 and use_delta[n]:
            s0.append((delta_rps, used[n]))
        for j in range(n0):
            d = ref_s0[j][0] + delta_rps
            if d < 0 and use_delta[j]:
                s0.append((d, used[j]))
        for j in reversed(range(n0)):
            d = ref_s0[j][0] + delta_rps
            if d > 0 and use_delta[j]:
                s1.append((d, used[j]))
        if delta_rps > 0 and use_delta[n]:
            s1.append((delta_rps, used[n]))
        for j in range(len(ref_s1)):
            d = ref_s1[j][0] + delta_rps
            if d > 0 and use_delta[n0 + j]:
                s1.append((d, used[n0 + j]))
        return s0, s1
    negative, positive = b.ue(), b.ue()
    s0, s1, poc = [], [], 0
    for _ in range(negative):
        poc -= b.ue() + 1
        s0.append((poc, b.u(1)))
    poc = 0
    for _ in range(positive):
        poc += b.ue() + 1
        s1.append((poc, b.u(1)))
    return s0, s1


@dataclass
class _Sps:
    chroma: int  # ChromaArrayType
    separate_planes: bool
    address_bits: int  # Ceil(Log2(PicSizeInCtbsY))
    poc_bits: int
    sao: bool
    rps: list
    long_term: bool
    long_term_used: list
    temporal_mvp: bool


def _parse_sps(b: _Bits) -> tuple[int, _Sps]:
    b.u(4)
    max_sub = b.u(3)
    b.u(1)
    if _profile_tier_level(b, max_sub) >= SCREEN_CONTENT_PROFILE:
        raise ValueError("screen content coding: other slice headers")
    sps_id = b.ue()
    chroma = b.ue()
    separate = b.u(1) if chroma == 3 else 0
    width, height = b.ue(), b.ue()
    if b.u(1):  # conformance window
        for _ in range(4):
            b.ue()
    b.ue(); b.ue()  # bit depths
    poc_bits = b.ue() + 4
    for _ in range(0 if b.u(1) else max_sub, max_sub + 1):
        b.ue(); b.ue(); b.ue()
    min_cb = b.ue() + 3
    ctb = min_cb + b.ue()
    b.ue(); b.ue(); b.ue(); b.ue()  # transform block sizes and depths
    if b.u(1) and b.u(1):  # scaling lists, in the SPS
        _skip_scaling_list_data(b)
    b.u(1)  # amp
    sao = bool(b.u(1))
    if b.u(1):  # PCM
        b.u(8); b.ue(); b.ue(); b.u(1)
    rps: list = []
    count = b.ue()
    for i in range(count):
        rps.append(_st_ref_pic_set(b, i, rps, count))
    long_term = bool(b.u(1))
    long_term_used = []  # used_by_curr_pic_lt_sps_flag of each candidate
    if long_term:
        for _ in range(b.ue()):
            b.u(poc_bits)
            long_term_used.append(b.u(1))
    temporal_mvp = bool(b.u(1))
    ctbs = -(-width // (1 << ctb)) * -(-height // (1 << ctb))
    return sps_id, _Sps(0 if separate else chroma, bool(separate), (ctbs - 1).bit_length(), poc_bits, sao, rps, long_term, long_term_used, temporal_mvp)


@dataclass
class _Pps:
    sps_id: int
    dependent_slices: bool
    output_flag: bool
    extra_bits: int
    cabac_init: bool
    l0_default: int
    l1_default: int
    init_qp: int
    weighted_p: bool
    weighted_b: bool
    lists_modification: bool


def _parse_pps(b: _Bits) -> tuple[int, _Pps]:
    pps_id, sps_id = b.ue(), b.ue()
    dependent, output, extra = b.u(1), b.u(1), b.u(3)
    b.u(1)  # sign data hiding
    cabac_init = b.u(1)
    l0, l1 = b.ue() + 1, b.ue() + 1
    init_qp = 26 + b.se()
    b.u(1); b.u(1)  # constrained intra, transform skip
    if b.u(1):  # cu_qp_delta_enabled_flag
        b.ue()
    b.se(); b.se(); b.u(1)  # chroma QP offsets
    weighted_p, weighted_b = b.u(1), b.u(1)
    b.u(1)  # transquant bypass
    tiles = b.u(1)
    b.u(1)  # entropy coding sync
    if tiles:
        cols, rows = b.ue(), b.ue()
        if not b.u(1):
            for _ in range(cols + rows):
                b.ue()
        b.u(1)
    b.u(1)  # loop filter across slices
    if b.u(1):  # deblocking filter control
        b.u(1)
        if not b.u(1):
            b.se(); b.se()
    if b.u(1):
        _skip_scaling_list_data(b)
    lists_modification = b.u(1)
    return pps_id, _Pps(sps_id, bool(dependent), bool(output), extra, bool(cabac_init), l0, l1, init_qp, bool(weighted_p),
                        bool(weighted_b), bool(lists_modification))


SLICE_HEADER_BYTES = 1024  # a slice segment header ends well within this; the slice data is not read


class HevcQuantisers:
    """The QP of each picture of one HEVC stream: ``picture_qp`` of its packets in decode order
    (parameter sets from the container's ``extradata``, hvcC or Annex B, and in-band)."""

    def __init__(self, extradata: bytes | None = None):
        self.sps: dict[int, _Sps] = {}
        self.pps: dict[int, _Pps] = {}
        units, self.length_size = hvcc_units(extradata or b"")
        for nal in units:
            self._read(nal)

    def picture_qp(self, packet: bytes) -> float | None:
        """The mean QP of the slices in a packet (an access unit); None where it has none that could
        be read (a damaged or unsupported header, a missing parameter set): that picture runs blind."""
        qps = [qp for nal in nal_units(packet, self.length_size) if (qp := self._read(nal)) is not None]
        return float(sum(qps) / len(qps)) if qps else None

    def _read(self, nal: bytes) -> int | None:
        if len(nal) < 3 or (nal[0] & 1) or nal[1] >> 3:  # the base layer only (nuh_layer_id 0)
            return None
        kind = (nal[0] >> 1) & 0x3F
        try:
            if kind == 33:
                sps_id, sps = _parse_sps(_Bits(nal[2:]))
                self.sps[sps_id] = sps
            elif kind == 34:
                pps_id, pps = _parse_pps(_Bits(nal[2:]))
                self.pps[pps_id] = pps
            elif kind <= 9 or 16 <= kind <= 21:  # coded slice segments
                return self._slice_qp(_Bits(nal[2:SLICE_HEADER_BYTES]), kind)
        except (IndexError, ValueError):  # truncated or damaged
            pass
        return None

    def _slice_qp(self, b: _Bits, kind: int) -> int | None:
        first = b.u(1)
        if 16 <= kind <= 23:
            b.u(1)  # no_output_of_prior_pics_flag
        pps = self.pps.get(b.ue())
        sps = self.sps.get(pps.sps_id) if pps else None
        if sps is None:
            return None
        if not first:
            if pps.dependent_slices and b.u(1):
                return None  # a dependent segment takes its QP from the segment before
            b.u(sps.address_bits)
        b.u(pps.extra_bits)
        slice_type = b.ue()  # 0 B, 1 P, 2 I
        if pps.output_flag:
            b.u(1)
        if sps.separate_planes:
            b.u(2)  # colour_plane_id
        temporal_mvp = False
        used = 0
        if kind not in (19, 20):  # not IDR
            b.u(sps.poc_bits)
            if not b.u(1):  # short_term_ref_pic_set_sps_flag
                s0, s1 = _st_ref_pic_set(b, len(sps.rps), sps.rps, len(sps.rps))
            else:
                s0, s1 = sps.rps[b.u((len(sps.rps) - 1).bit_length()) if len(sps.rps) > 1 else 0]
            used = sum(u for _, u in s0 + s1)
            if sps.long_term:
                candidates = len(sps.long_term_used)
                from_sps = b.ue() if candidates else 0
                for i in range(from_sps + b.ue()):
                    if i < from_sps:
                        used += sps.long_term_used[b.u((candidates - 1).bit_length()) if candidates > 1 else 0]
                    else:
                        b.u(sps.poc_bits)
                        used += b.u(1)
                    if b.u(1):
                        b.ue()
            if sps.temporal_mvp:
                temporal_mvp = bool(b.u(1))
        if sps.sao:
            b.u(1)
            if sps.chroma:
                b.u(1)
        if slice_type != 2:
            l0, l1 = pps.l0_default, pps.l1_default if slice_type == 0 else 0
            if b.u(1):  # num_ref_idx_active_override_flag
                l0 = b.ue() + 1
                if slice_type == 0:
                    l1 = b.ue() + 1
            if pps.lists_modification and used > 1:
                bits = (used - 1).bit_length()
                for n in (l0, l1):
                    if n and b.u(1):
                        b.u(bits * n)
            if slice_type == 0:
                b.u(1)  # mvd_l1_zero_flag
            if pps.cabac_init:
                b.u(1)
            if temporal_mvp:
                from_l0 = b.u(1) if slice_type == 0 else 1
                if (l0 if from_l0 else l1) > 1:
                    b.ue()
            if (pps.weighted_p and slice_type == 1) or (pps.weighted_b and slice_type == 0):
                self._skip_pred_weight_table(b, sps.chroma, l0, l1)
            b.ue()  # five_minus_max_num_merge_cand
        qp = pps.init_qp + b.se()
        return qp if 0 <= qp <= 51 else None  # 8-bit range; anything else is a misread header

    @staticmethod
    def _skip_pred_weight_table(b: _Bits, chroma: int, l0: int, l1: int) -> None:
        b.ue()
        if chroma:
            b.se()
        for n in (l0, l1):
            if not n:
                continue
            luma = [b.u(1) for _ in range(n)]
            chroma_flags = [b.u(1) for _ in range(n)] if chroma else [0] * n
            for lf, cf in zip(luma, chroma_flags):
                if lf:
                    b.se(); b.se()
                if cf:
                    for _ in range(4):
                        b.se()


def nal_units(data: bytes, length_size: int | None = 4) -> list[bytes]:
    """The NAL units of a packet: length-prefixed (MP4/MKV, ``length_size`` bytes) or Annex B
    start codes (``length_size`` None)."""
    if length_size is None:
        parts = data.split(b"\x00\x00\x01")
        return [p.rstrip(b"\x00") for p in parts[1:] if p]
    units, pos = [], 0
    while pos + length_size <= len(data):
        n = int.from_bytes(data[pos : pos + length_size], "big")
        units.append(data[pos + length_size : pos + length_size + n])
        pos += length_size + n
    return units


def hvcc_units(extradata: bytes) -> tuple[list[bytes], int | None]:
    """The parameter-set NAL units of an hvcC record and its NAL length size (Annex B extradata: the
    units and None)."""
    if len(extradata) < 23 or extradata[0] != 1:
        return nal_units(extradata, None), None
    length_size = (extradata[21] & 3) + 1
    units, pos = [], 23
    for _ in range(extradata[22]):
        count = int.from_bytes(extradata[pos + 1 : pos + 3], "big")  # after the unit type byte
        pos += 3
        for _ in range(count):
            n = int.from_bytes(extradata[pos : pos + 2], "big")
            units.append(extradata[pos + 2 : pos + 2 + n])
            pos += 2 + n
    return units, length_size
