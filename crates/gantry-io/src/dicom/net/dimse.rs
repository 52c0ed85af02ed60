//! DIMSE commands (always Implicit VR Little Endian, group length first).

use super::*;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::mem::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::Pdu;

pub(super) fn command(elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let obj = InMemDicomObject::from_element_iter(elements);
    let ts = TransferSyntaxRegistry.get(IMPLICIT_LE).expect("implicit VR little endian is built in");
    let mut body = Vec::with_capacity(128);
    obj.write_dataset_with_ts(&mut body, ts).expect("a command set always encodes");
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(&[0, 0, 0, 0, 4, 0, 0, 0]); // (0000,0000) UL, length 4
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

pub(super) fn ui(tag: dicom_core::Tag, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::UI, PrimitiveValue::from(v))
}

pub(super) fn us(tag: dicom_core::Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

pub(super) fn echo_rq(id: u16) -> Vec<u8> {
    command(vec![
        ui(tags::AFFECTED_SOP_CLASS_UID, VERIFICATION),
        us(tags::COMMAND_FIELD, 0x0030),
        us(tags::MESSAGE_ID, id),
        us(tags::COMMAND_DATA_SET_TYPE, 0x0101),
    ])
}

pub(super) fn echo_rsp(id: u16) -> Vec<u8> {
    command(vec![
        ui(tags::AFFECTED_SOP_CLASS_UID, VERIFICATION),
        us(tags::COMMAND_FIELD, 0x8030),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, id),
        us(tags::COMMAND_DATA_SET_TYPE, 0x0101),
        us(tags::STATUS, status::SUCCESS),
    ])
}

pub(super) fn store_rq(id: u16, class: &str, instance: &str) -> Vec<u8> {
    command(vec![
        ui(tags::AFFECTED_SOP_CLASS_UID, class),
        us(tags::COMMAND_FIELD, 0x0001),
        us(tags::MESSAGE_ID, id),
        us(tags::PRIORITY, 0),
        us(tags::COMMAND_DATA_SET_TYPE, 0x0000),
        ui(tags::AFFECTED_SOP_INSTANCE_UID, instance),
    ])
}

pub(super) fn store_rsp(id: u16, class: &str, instance: &str, status: u16) -> Vec<u8> {
    command(vec![
        ui(tags::AFFECTED_SOP_CLASS_UID, class),
        us(tags::COMMAND_FIELD, 0x8001),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, id),
        us(tags::COMMAND_DATA_SET_TYPE, 0x0101),
        us(tags::STATUS, status),
        ui(tags::AFFECTED_SOP_INSTANCE_UID, instance),
    ])
}

pub(super) fn parse_command(bytes: &[u8]) -> std::result::Result<InMemDicomObject, String> {
    let ts = TransferSyntaxRegistry.get(IMPLICIT_LE).expect("built in");
    InMemDicomObject::read_dataset_with_ts(bytes, ts).map_err(|e| format!("malformed command set: {e}"))
}

pub(super) fn command_u16(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<u16> {
    obj.get(tag).and_then(|e| e.to_int::<u16>().ok())
}

pub(super) fn command_pdu(pc: u8, data: Vec<u8>) -> Pdu {
    Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Command,
            is_last: true,
            data,
        }],
    }
}
