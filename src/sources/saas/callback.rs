//! The message crypto WeCom's and DingTalk's HTTP callbacks share (the
//! vendors' `WXBizMsgCrypt` / `DingCallbackCrypto`): the signature is the
//! SHA-1 of the sorted token, timestamp, nonce and ciphertext; the key is
//! base64(EncodingAESKey + "="), AES-256-CBC with the key's first 16 bytes
//! as IV, PKCS#7 padded to 32 bytes; the plaintext is 16 random bytes, the
//! message's length (4 bytes, big-endian), the message, and the receiver
//! (WeCom: the corp id; DingTalk: the AppKey), which must be ours.

use crate::config::Secret;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use sha1::{Digest, Sha1};

/// Why a callback is not acted on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("msg_signature does not match (not from the vendor, or another token)")]
    Signature,
    #[error("msg_signature, timestamp or nonce is missing")]
    Unsigned,
    #[error("the ciphertext cannot be decrypted with the EncodingAESKey")]
    Decrypt,
    #[error("the message is for another receiver ({0:?}, not ours)")]
    Receiver(String),
    #[error("not the XML of a callback: {0}")]
    Xml(String),
}

/// The configured token and key, and the receiver messages must be for.
pub struct Callback {
    token: Secret,
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").field("receive_id", &self.receive_id).finish_non_exhaustive()
    }
}

type Decryptor = cbc::Decryptor<aes::Aes256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;

/// The padding's block: 32 bytes, not AES's 16.
const PAD_BLOCK: usize = 32;

/// Base64 as the vendor's samples read it: the key's last character may
/// carry bits past its 32 bytes (the sample key's does).
const LENIENT: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true));

impl Callback {
    /// `encoding_aes_key`: the 43 characters the vendor shows.
    pub fn new(token: Secret, encoding_aes_key: &str, receive_id: &str) -> Result<Self, &'static str> {
        let bytes = LENIENT
            .decode(format!("{}=", encoding_aes_key.trim()))
            .map_err(|_| "is not an EncodingAESKey: 43 characters of base64 (letters and digits)")?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "is not an EncodingAESKey: it must be 43 characters")?;
        Ok(Callback { token, key, receive_id: receive_id.to_owned() })
    }

    /// `msg_signature` of a ciphertext.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        let mut parts = [self.token.expose(), timestamp, nonce, encrypted];
        parts.sort_unstable();
        Sha1::digest(parts.concat().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The plaintext of a signed ciphertext (the echostr of a URL
    /// verification, or a POST's `Encrypt`), checked to be for us.
    pub fn open(&self, signature: &str, timestamp: &str, nonce: &str, encrypted: &str) -> Result<String, CallbackError> {
        let expected = self.signature(timestamp, nonce, encrypted);
        if !crate::http::same(expected.as_bytes(), signature.trim().to_ascii_lowercase().as_bytes()) {
            return Err(CallbackError::Signature);
        }
        let mut data = LENIENT.decode(encrypted.trim()).map_err(|_| CallbackError::Decrypt)?;
        if data.is_empty() || !data.len().is_multiple_of(16) {
            return Err(CallbackError::Decrypt);
        }
        let plain = Decryptor::new(&self.key.into(), self.key[..16].into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| CallbackError::Decrypt)?;
        let pad = usize::from(*plain.last().ok_or(CallbackError::Decrypt)?);
        if !(1..=PAD_BLOCK).contains(&pad) || pad > plain.len() {
            return Err(CallbackError::Decrypt);
        }
        let plain = &plain[..plain.len() - pad];
        let len = plain.get(16..20).ok_or(CallbackError::Decrypt)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let msg = plain.get(20..20 + len).ok_or(CallbackError::Decrypt)?;
        let receiver = &plain[20 + len..];
        if receiver != self.receive_id.as_bytes() {
            return Err(CallbackError::Receiver(String::from_utf8_lossy(receiver).into_owned()));
        }
        String::from_utf8(msg.to_vec()).map_err(|_| CallbackError::Decrypt)
    }

    /// A message as the vendor sends it (`random`: its 16 leading bytes):
    /// the ciphertext, in base64. What the tests send as the vendor, and
    /// DingTalk's answers.
    pub fn seal(&self, msg: &str, random: [u8; 16]) -> String {
        let mut plain = random.to_vec();
        plain.extend((msg.len() as u32).to_be_bytes());
        plain.extend(msg.as_bytes());
        plain.extend(self.receive_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let len = plain.len();
        let sealed = Encryptor::new(&self.key.into(), self.key[..16].into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        STANDARD.encode(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendor's sample (weworkapi_python callback/Sample.py).
    fn sample() -> Callback {
        Callback::new(Secret::new("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"), "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee")
            .unwrap()
    }

    #[test]
    fn the_vendors_url_verification_and_message_open() {
        let c = sample();
        let echo = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==";
        let plain = c.open("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", echo).unwrap();
        assert!(!plain.is_empty() && plain.chars().all(|ch| ch.is_ascii_digit()), "{plain:?}");
        let body = "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>";
        let encrypted = crate::sources::wecom::events::field(body, "Encrypt").unwrap().unwrap();
        let msg = c.open("0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914", &encrypted).unwrap();
        let field = |n| crate::sources::wecom::events::field(&msg, n).unwrap();
        assert_eq!(field("MsgType").as_deref(), Some("text"), "{msg}");
        assert_eq!(field("ToUserName").as_deref(), Some("ww1436e0e65a779aee"));
        // Another token or receiver: refused.
        assert_eq!(
            c.open("0c3914025cb4b4d68103f6bfc8db550f79dcf48f", "1476422779", "1597212914", &encrypted),
            Err(CallbackError::Signature)
        );
        let other = Callback::new(Secret::new("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"), "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww0000")
            .unwrap();
        assert!(matches!(
            other.open("0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914", &encrypted),
            Err(CallbackError::Receiver(r)) if r == "ww1436e0e65a779aee"
        ));
    }

    #[test]
    fn a_key_that_is_not_43_characters_of_base64_is_refused() {
        assert!(Callback::new(Secret::new("t"), "short", "ww1").is_err());
        assert!(Callback::new(Secret::new("t"), "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhU!", "ww1").is_err());
    }

    proptest::proptest! {
        /// What is sealed opens to itself, with its signature; one byte off does not.
        #[test]
        fn a_sealed_message_opens_to_itself(msg in ".{0,300}", random in proptest::array::uniform16(proptest::num::u8::ANY)) {
            let c = sample();
            let sealed = c.seal(&msg, random);
            let sig = c.signature("1", "2", &sealed);
            proptest::prop_assert_eq!(c.open(&sig, "1", "2", &sealed), Ok(msg));
            proptest::prop_assert_eq!(c.open(&sig, "1", "3", &sealed), Err(CallbackError::Signature));
        }
    }
}
